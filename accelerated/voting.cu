// The CuPy voting kernels: accelerated.voting's Numba-CUDA kernels in CUDA C (helpers in common.cuh), steps 1, 3
// and 4 of the loop template fcis_twin.reference.voting.mask_voting_loop; step 2 is array code.

#include "common.cuh"

// Step 1, accelerated.voting._voter_flags_kernel: one thread per (detection i, ROI j).
extern "C" __global__ void voter_flags(const float* boxes, const long long* rois, int num, int num_rois,
                                       float threshold, bool* flags) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)num * num_rois) return;
    long long i = t / num_rois, j = t % num_rois;
    long long r = rois[i];
    const float* a = boxes + 4 * r;
    const float* b = boxes + 4 * j;
    flags[t] = j == r || iou(a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]) >= threshold;
}

// Step 3, accelerated.voting._voter_windows_kernel: one thread per detection: weight sum (float32, ascending j),
// window, launch area, initial extent.
extern "C" __global__ void voter_windows(const float* cls_probs, int num_classes, const long long* labels,
        const long long* regions, const long long* voter_offsets, const long long* voters, int num, int height,
        int width, long long* windows, long long* areas, float* totals, int* extents) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= num) return;
    // weight sum and union of the non-empty voter regions
    float total = 0.0f;
    long long top = height, left = width, bottom = 0, right = 0;
    for (long long v = voter_offsets[i]; v < voter_offsets[i + 1]; ++v) {
        const long long* region = regions + voters[v] * REGION_FIELDS;
        total = total + cls_probs[voters[v] * num_classes + labels[i]];
        if (region[REGION_BOTTOM] > region[REGION_TOP] && region[REGION_RIGHT] > region[REGION_LEFT]) {
            top = min(top, region[REGION_TOP]);
            left = min(left, region[REGION_LEFT]);
            bottom = max(bottom, region[REGION_BOTTOM]);
            right = max(right, region[REGION_RIGHT]);
        }
    }
    // a zero weight sum drops the detection: no pixels to vote
    if (!(total > 0.0f && bottom > top)) top = left = bottom = right = 0;
    long long* window = windows + (long long)i * WINDOW_FIELDS;
    window[WINDOW_TOP] = top;
    window[WINDOW_LEFT] = left;
    window[WINDOW_BOTTOM] = bottom;
    window[WINDOW_RIGHT] = right;
    areas[i] = (bottom - top) * (right - left);
    totals[i] = total;
    int* extent = extents + (long long)i * EXTENT_FIELDS;
    extent[EXTENT_X_MIN] = width;
    extent[EXTENT_Y_MIN] = height;
    extent[EXTENT_X_MAX] = -1;
    extent[EXTENT_Y_MAX] = -1;
}

// Step 4, accelerated.voting._vote_kernel: one thread per (detection, window pixel), flat over pixel_offsets[num].
extern "C" __global__ void vote(const float* cls_masks, int num_classes, int mask_h, int mask_w,
        const float* cls_probs, const long long* labels, const long long* regions, const long long* voter_offsets,
        const long long* voters, const long long* windows, const long long* pixel_offsets, const float* totals,
        int num, int height, int width, float threshold, bool* masks, int* extents) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= pixel_offsets[num]) return;
    // the detection and the image pixel
    int i = owner(pixel_offsets, num, t);
    const long long* window = windows + (long long)i * WINDOW_FIELDS;
    long long cols = window[WINDOW_RIGHT] - window[WINDOW_LEFT];
    long long y = window[WINDOW_TOP] + (t - pixel_offsets[i]) / cols;
    long long x = window[WINDOW_LEFT] + (t - pixel_offsets[i]) % cols;
    // weighted sum over the voters whose region holds the pixel, ascending j
    long long c = labels[i];
    float acc = 0.0f;
    for (long long v = voter_offsets[i]; v < voter_offsets[i + 1]; ++v) {
        long long j = voters[v];
        const long long* region = regions + j * REGION_FIELDS;
        if (region[REGION_TOP] <= y && y < region[REGION_BOTTOM] && region[REGION_LEFT] <= x
                && x < region[REGION_RIGHT]) {
            const float* mask = cls_masks + (j * num_classes + c) * mask_h * mask_w;
            acc = acc + cls_probs[j * num_classes + c] * sample(mask, mask_h, mask_w, region, y, x);
        }
    }
    // binarize; grow the extent (a plain read first skips most atomics, a stale read only costs one)
    bool inside = acc / totals[i] >= threshold;
    masks[((long long)i * height + y) * width + x] = inside;
    if (inside) {
        int* extent = extents + (long long)i * EXTENT_FIELDS;
        if (x < extent[EXTENT_X_MIN]) atomicMin(extent + EXTENT_X_MIN, (int)x);
        if (y < extent[EXTENT_Y_MIN]) atomicMin(extent + EXTENT_Y_MIN, (int)y);
        if (x > extent[EXTENT_X_MAX]) atomicMax(extent + EXTENT_X_MAX, (int)x);
        if (y > extent[EXTENT_Y_MAX]) atomicMax(extent + EXTENT_Y_MAX, (int)y);
    }
}
