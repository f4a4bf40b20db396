// The CuPy paste kernels: accelerated.paste's Numba-CUDA kernels in CUDA C (helpers in common.cuh).
// One thread per (detection, pixel of its in-image region), flat over offsets[num] threads.

#include "common.cuh"

// paste_pixel: flat thread t -> its detection d, image pixel (y, x) and the pasted probability; `index` is the
// flat (d, y, x) position in the (D, H, W) output.
__device__ float paste_pixel(const float* masks, const long long* regions, const long long* offsets, int num,
                             int mask_h, int mask_w, int height, int width, long long t, long long* index) {
    int d = owner(offsets, num, t);
    const long long* region = regions + (long long)d * REGION_FIELDS;
    long long cols = region[REGION_RIGHT] - region[REGION_LEFT];
    long long y = region[REGION_TOP] + (t - offsets[d]) / cols;  // row-major inside the region
    long long x = region[REGION_LEFT] + (t - offsets[d]) % cols;
    *index = ((long long)d * height + y) * width + x;
    return sample(masks + (long long)d * mask_h * mask_w, mask_h, mask_w, region, y, x);
}

// accelerated.paste._paste_prob_kernel
extern "C" __global__ void paste_masks_prob(const float* masks, const long long* regions,
        const long long* offsets, int num, int mask_h, int mask_w, int height, int width, float threshold,
        float* out) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= offsets[num]) return;
    long long index;
    float value = paste_pixel(masks, regions, offsets, num, mask_h, mask_w, height, width, t, &index);
    out[index] = value;
}

// accelerated.paste._paste_binary_kernel
extern "C" __global__ void paste_masks_binary(const float* masks, const long long* regions,
        const long long* offsets, int num, int mask_h, int mask_w, int height, int width, float threshold,
        bool* out) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= offsets[num]) return;
    long long index;
    float value = paste_pixel(masks, regions, offsets, num, mask_h, mask_w, height, width, t, &index);
    out[index] = value >= threshold;
}
