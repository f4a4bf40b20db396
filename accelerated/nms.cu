// The CuPy NMS kernels: accelerated.nms's Numba-CUDA kernels in CUDA C (iou in common.cuh).

#include "common.cuh"

// accelerated.nms._mask_kernel
extern "C" __global__ void nms_mask(const float* boxes, const long long* block_first, const long long* block_end,
                                    const float threshold, const long long width, unsigned long long* mask) {
    const long long row_block = blockIdx.x, col = blockIdx.y;
    const int tid = threadIdx.x;
    const long long first = block_first[row_block], end = block_end[row_block];
    const long long col_start = (first + col) * NMS_THREADS;
    // bounds guard (the whole block leaves together): columns at or after the row block, within its label
    if (first + col < row_block || col_start >= end) return;
    const int cols = (int)min(end - col_start, (long long)NMS_THREADS);
    __shared__ float col_boxes[NMS_THREADS][4];

    // phase 1: the column block's boxes into shared memory, one per thread
    if (tid < cols) {
        for (int k = 0; k < 4; k++) col_boxes[tid][k] = boxes[(col_start + tid) * 4 + k];
    }
    __syncthreads();  // every column box is in shared memory before any row reads it

    // phase 2: this thread's row box against the columns after it; padding rows write nothing
    const long long row = row_block * NMS_THREADS + tid;
    if (row < end) {
        const float* a = boxes + row * 4;
        const int start = (first + col == row_block) ? tid + 1 : 0;
        unsigned long long word = 0;
        for (int j = start; j < cols; j++) {
            if (iou(a[0], a[1], a[2], a[3], col_boxes[j][0], col_boxes[j][1], col_boxes[j][2], col_boxes[j][3])
                    > threshold)
                word |= 1ULL << j;
        }
        mask[row * width + col] = word;
    }
}

// accelerated.nms._pass_kernel
extern "C" __global__ void nms_pass(const long long* rank_pos, const long long* order, const long long n,
                                    const unsigned long long* mask, const long long width,
                                    const long long* block_first, const long long* block_end,
                                    const long long blocks, long long* keep, long long* count) {
    const int tid = threadIdx.x;
    extern __shared__ unsigned long long removed[];  // bit p % 64 of word p / 64: position p is suppressed
    __shared__ long long chunk_pos[NMS_PASS_THREADS];
    __shared__ long long chunk_idx[NMS_PASS_THREADS];

    // phase 1: nothing is removed yet
    for (long long w = tid; w < blocks; w += NMS_PASS_THREADS) removed[w] = 0;
    long long kept = 0;

    // phase 2: the boxes by rank, NMS_PASS_THREADS ranks at a time
    for (long long chunk = 0; chunk < n; chunk += NMS_PASS_THREADS) {
        if (chunk + tid < n) {
            chunk_pos[tid] = rank_pos[chunk + tid];
            chunk_idx[tid] = order[chunk + tid];
        }
        __syncthreads();  // the removed bits are zeroed and the chunk is staged before thread 0 walks it
        if (tid == 0) {
            const long long rows = min((long long)NMS_PASS_THREADS, n - chunk);
            for (long long r = 0; r < rows; r++) {
                const long long p = chunk_pos[r], b = p / NMS_THREADS;
                if ((removed[b] >> (p % NMS_THREADS)) & 1ULL) continue;  // a kept box of higher rank overlaps it
                keep[kept++] = chunk_idx[r];
                const long long first = block_first[b];
                const long long words = (block_end[b] - first * NMS_THREADS + NMS_THREADS - 1) / NMS_THREADS;
                for (long long c = b - first; c < words; c++) removed[first + c] |= mask[p * width + c];
            }
        }
        __syncthreads();  // thread 0 has walked the chunk before the next one overwrites it
    }
    if (tid == 0) count[0] = kept;
}
