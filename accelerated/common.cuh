// Device functions shared by the CuPy kernels of NMS, paste and voting: the CUDA C spelling of the Numba helpers in
// accelerated/_float32.py and accelerated/_launch.py.  The named fields (REGION_*, ...) are #defined in front of
// the including source from the Python constants (accelerated._launch.cuda_defines).  Compiled with --fmad=false:
// every product below is rounded on its own, as in the reference.
#pragma once

// _float32.iou: IoU of two boxes (x1, y1, x2, y2), one float32 operation at a time in the reference's order.
__device__ float iou(float ax1, float ay1, float ax2, float ay2, float bx1, float by1, float bx2, float by2) {
    float iw = fmaxf(fminf(ax2, bx2) - fmaxf(ax1, bx1), 0.0f);
    float ih = fmaxf(fminf(ay2, by2) - fmaxf(ay1, by1), 0.0f);
    float inter = iw * ih;
    float uni = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter;
    return uni > 0.0f ? inter / uni : 0.0f;
}

// _launch.owner: the d with offsets[d] <= t < offsets[d + 1], for offsets of length n + 1 (binary search).
__device__ int owner(const long long* offsets, int n, long long t) {
    int lo = 0, hi = n;  // invariant: offsets[lo] <= t < offsets[hi]
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (offsets[mid] <= t) lo = mid; else hi = mid;
    }
    return lo;
}

// _float32.axis_coord: sample position of pixel `offset` of a `size`-pixel box side on a `p`-cell mask axis.
__device__ void axis_coord(long long offset, int p, long long size, int* i0, int* i1, float* a) {
    float u = ((float)offset + 0.5f) * (float)p / (float)size - 0.5f;
    u = fminf(fmaxf(u, 0.0f), (float)(p - 1));
    *i0 = (int)floorf(u);
    *i1 = min(*i0 + 1, p - 1);
    *a = u - (float)*i0;
}

// _float32.lerp: fl(fl((1 - a) * v0) + fl(a * v1)).
__device__ float lerp(float v0, float v1, float a) {
    return (1.0f - a) * v0 + a * v1;
}

// _float32.bilinear on one (mask_h, mask_w) mask at image pixel (y, x) of its paste region: rows first.
__device__ float sample(const float* mask, int mask_h, int mask_w, const long long* region, long long y, long long x) {
    int v0, v1, u0, u1;
    float ay, ax;
    axis_coord(y - region[REGION_Y1], mask_h, region[REGION_H], &v0, &v1, &ay);
    axis_coord(x - region[REGION_X1], mask_w, region[REGION_W], &u0, &u1, &ax);
    float r0 = lerp(mask[v0 * mask_w + u0], mask[v1 * mask_w + u0], ay);
    float r1 = lerp(mask[v0 * mask_w + u1], mask[v1 * mask_w + u1], ay);
    return lerp(r0, r1, ax);
}
