// The CuPy assembly kernels: accelerated.assemble's Numba-CUDA kernels in CUDA C, line by line, with C's roundf
// (half away from zero, as the conventions) in place of _round_half_away.  MIN_ROI_SIZE and the ROI_* fields are
// #defined in front from the Python constants.

// Feature rows [hstart, hend) and columns [wstart, wend) of bin (ph, pw) of one ROI row:
// fcis_twin.fcis_twin.reference.assemble's _roi_bins for one bin; clipped to the map in float, then floored / ceiled.
__device__ void bin_edges(int ph, int pw, const float* roi, int height, int width, int output_size,
                          float spatial_scale, int* hstart, int* hend, int* wstart, int* wend)
{
    // the ROI in feature cells: rounded image coordinates, scaled; at least MIN_ROI_SIZE on a side
    float roi_start_w = roundf(roi[ROI_X1]) * spatial_scale;
    float roi_start_h = roundf(roi[ROI_Y1]) * spatial_scale;
    float roi_end_w = roundf(roi[ROI_X2]) * spatial_scale;
    float roi_end_h = roundf(roi[ROI_Y2]) * spatial_scale;
    float roi_width = fmaxf(roi_end_w - roi_start_w, MIN_ROI_SIZE);
    float roi_height = fmaxf(roi_end_h - roi_start_h, MIN_ROI_SIZE);
    float bin_size_w = roi_width / (float)output_size;
    float bin_size_h = roi_height / (float)output_size;
    // the bin's edges: each product rounded before the add (--fmad=false)
    float ws = (float)pw * bin_size_w + roi_start_w;
    float we = (float)(pw + 1) * bin_size_w + roi_start_w;
    float hs = (float)ph * bin_size_h + roi_start_h;
    float he = (float)(ph + 1) * bin_size_h + roi_start_h;
    // clipped to the map, then to ints
    *wstart = (int)floorf(fminf(fmaxf(ws, 0.0f), (float)width));
    *wend = (int)ceilf(fminf(fmaxf(we, 0.0f), (float)width));
    *hstart = (int)floorf(fminf(fmaxf(hs, 0.0f), (float)height));
    *hend = (int)ceilf(fminf(fmaxf(he, 0.0f), (float)height));
}

// One thread per output element (n, c_out, ph, pw), pw fastest.
extern "C" __global__ void ps_assemble_forward(
    const float* bottom_data, const float* rois, long long total, int channels, int height, int width,
    int output_dim, int group_size, int output_size, float spatial_scale, float* top_data)
{
    long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= total) return;
    // (n, c_out, ph, pw) from the flat index
    int pw = (int)(index % output_size);
    int ph = (int)((index / output_size) % output_size);
    int c_out = (int)((index / output_size / output_size) % output_dim);
    long long n = index / output_size / output_size / output_dim;
    // the bin and its part cell's channel
    const float* roi = rois + n * ROI_FIELDS;
    int roi_batch_ind = (int)roi[ROI_BATCH];
    int hstart, hend, wstart, wend;
    bin_edges(ph, pw, roi, height, width, output_size, spatial_scale, &hstart, &hend, &wstart, &wend);
    int gw = (pw * group_size) / output_size;
    int gh = (ph * group_size) / output_size;
    int c = (c_out * group_size + gh) * group_size + gw;
    // the mean: a row-major float32 sum divided by the float32 area; 0 for an empty bin
    if (hend <= hstart || wend <= wstart) {
        top_data[index] = 0.0f;
        return;
    }
    const float* data = bottom_data + ((long long)roi_batch_ind * channels + c) * height * width;
    float out_sum = 0.0f;
    for (int h = hstart; h < hend; ++h)
        for (int w = wstart; w < wend; ++w)
            out_sum += data[h * width + w];
    float bin_area = (float)((hend - hstart) * (wend - wstart));
    top_data[index] = out_sum / bin_area;
}

// One thread per gradient element (n, c_out, ph, pw): atomically adds grad / bin_area to every pixel of its bin.
extern "C" __global__ void ps_assemble_backward(
    const float* top_diff, const float* rois, long long total, int channels, int height, int width,
    int output_dim, int group_size, int output_size, float spatial_scale, float* bottom_diff)
{
    long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= total) return;
    // (n, c_out, ph, pw) from the flat index
    int pw = (int)(index % output_size);
    int ph = (int)((index / output_size) % output_size);
    int c_out = (int)((index / output_size / output_size) % output_dim);
    long long n = index / output_size / output_size / output_dim;
    // the bin; nothing to spread from an empty one
    const float* roi = rois + n * ROI_FIELDS;
    int roi_batch_ind = (int)roi[ROI_BATCH];
    int hstart, hend, wstart, wend;
    bin_edges(ph, pw, roi, height, width, output_size, spatial_scale, &hstart, &hend, &wstart, &wend);
    if (hend <= hstart || wend <= wstart) return;
    // the bin's share per pixel, added to every pixel of the bin in its part cell's channel
    int gw = (pw * group_size) / output_size;
    int gh = (ph * group_size) / output_size;
    int c = (c_out * group_size + gh) * group_size + gw;
    float bin_area = (float)((hend - hstart) * (wend - wstart));
    float diff_val = top_diff[index] / bin_area;
    float* diff = bottom_diff + ((long long)roi_batch_ind * channels + c) * height * width;
    for (int h = hstart; h < hend; ++h)
        for (int w = wstart; w < wend; ++w)
            atomicAdd(diff + h * width + w, diff_val);
}
