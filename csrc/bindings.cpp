// Python entry point of the CPU kernel: checks that every index and size it is given stays
// inside the buffers it is given (bad input raises ValueError, never crashes), then runs
// resample.cpp with the GIL released. Plans arrive as typed fields (AxisArguments), not as
// objects whose attributes are looked up; their consistency as plans is vlfast/plans.py's.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "constants.h"
#include "expand.h"
#include "kernels.h"
#include "layout.h"
#include "resample.h"
#include "thread_pool.h"

namespace py = pybind11;

namespace {

// pybind11 raises std::invalid_argument as ValueError.
[[noreturn]] void fail(const std::string& message) { throw std::invalid_argument(message); }

std::string str(const py::handle& object) { return py::str(object).cast<std::string>(); }

// SimdLevel names, lowest first.
constexpr const char* kLevelNames[] = {"portable", "avx2", "avx512"};

std::string level_name(vlfast::SimdLevel level) { return kLevelNames[static_cast<int>(level)]; }

vlfast::SimdLevel parse_level(const std::string& name) {
    for (int level = 0; level < static_cast<int>(std::size(kLevelNames)); ++level)
        if (name == kLevelNames[level]) return static_cast<vlfast::SimdLevel>(level);
    fail("unknown SIMD level '" + name + "': expected 'portable', 'avx2' or 'avx512'");
}

std::string shape_of(const py::array& array) {
    std::string text = "(";
    for (py::ssize_t i = 0; i < array.ndim(); ++i) text += (i ? ", " : "") + std::to_string(array.shape(i));
    return text + (array.ndim() == 1 ? ",)" : ")");
}

int64_t checked_mul(int64_t a, int64_t b, const char* what) {
    if (a != 0 && b > std::numeric_limits<int64_t>::max() / a) fail(std::string(what) + " is too large");
    return a * b;
}

py::array as_array(const py::handle& object, const std::string& name) {
    if (!py::isinstance<py::array>(object))
        fail(name + " must be a numpy array, got " + str(py::type::handle_of(object).attr("__name__")));
    return py::reinterpret_borrow<py::array>(object);
}

bool is_c_contiguous(const py::array& array) { return (array.flags() & py::array::c_style) != 0; }

// num_threads checked (>= 1), at most vlfast::kMaxThreads.
int checked_threads(int64_t num_threads) {
    if (num_threads < 1) fail("num_threads must be >= 1, got " + std::to_string(num_threads));
    return static_cast<int>(std::min<int64_t>(num_threads, vlfast::kMaxThreads));
}

// The bytes [begin, end) that `array` (non-negative strides) spans.
std::pair<const uint8_t*, const uint8_t*> extent(const py::array& array) {
    const uint8_t* begin = static_cast<const uint8_t*>(array.data());
    int64_t last = 0;
    for (py::ssize_t i = 0; i < array.ndim(); ++i) last += (array.shape(i) - 1) * array.strides(i);
    return {begin, begin + last + array.itemsize()};
}

// Fails unless `out` shares no byte with any of `inputs` (named by `names`).
void check_no_overlap(const py::array& out, std::initializer_list<const py::array*> inputs, const char* names) {
    const auto [out_begin, out_end] = extent(out);
    for (const py::array* input : inputs) {
        const auto [begin, end] = extent(*input);
        if (out_begin < end && begin < out_end) fail(std::string("out must not overlap ") + names);
    }
}

// "1, 2 or 4": vlfast::kItemSizes in words.
std::string item_sizes_text() {
    std::string text;
    const size_t n = std::size(vlfast::kItemSizes);
    for (size_t i = 0; i < n; ++i)
        text += (i == 0 ? "" : (i + 1 == n ? " or " : ", ")) + std::to_string(vlfast::kItemSizes[i]);
    return text;
}

// An AxisPlan's fields, as vlfast/engines/cpp.py hands them over:
// (in_size, out_size, starts, counts, weights, precision).
using AxisArguments = std::tuple<int64_t, int64_t, py::array, py::array, py::array, int64_t>;

// A copy of `array`, which must be C-contiguous int32 of the given shape (columns < 0: 1-D).
std::vector<int32_t> int32_array(const py::array& array, const char* name, const std::string& owner, int64_t rows,
                                 int64_t columns = -1) {
    const std::string full_name = owner + "." + name;
    if (array.dtype().kind() != 'i' || array.itemsize() != 4)
        fail(full_name + " must be int32, got " + str(array.dtype()));
    const bool matrix = columns >= 0;
    if (array.ndim() != (matrix ? 2 : 1) || array.shape(0) != rows || (matrix && array.shape(1) != columns))
        fail(full_name + " must have shape (" + std::to_string(rows) + (matrix ? ", taps)" : ",)") + ", got " +
             shape_of(array));
    if (!is_c_contiguous(array)) fail(full_name + " must be C-contiguous");
    const int32_t* data = static_cast<const int32_t*>(array.data());
    return std::vector<int32_t>(data, data + array.size());
}

// The coefficients of an AxisPlan, copied (so that nothing another Python thread does to
// the plan while the GIL is released can break what was validated) and validated.
struct Axis {
    std::vector<int32_t> starts, counts, weights;
    vlfast::AxisCoefficients coefficients{};
};

// Reads the fields of an AxisPlan, which must resample an axis of `in_size` pixels, into `axis`.
void read_axis(const AxisArguments& plan, const std::string& owner, int64_t in_size, const char* axis_name,
               Axis& axis) {
    vlfast::AxisCoefficients& c = axis.coefficients;
    const auto& [plan_in_size, out_size, starts, counts, weights, precision] = plan;
    c.in_size = plan_in_size;
    c.out_size = out_size;
    if (c.in_size != in_size)
        fail(owner + " resamples " + std::to_string(c.in_size) + " input pixels but the image " + axis_name + " is " +
             std::to_string(in_size));
    if (c.out_size < 1) fail(owner + ".out_size must be >= 1, got " + std::to_string(c.out_size));
    if (precision < 1 || precision > vlfast::kMaxPrecision)
        fail(owner + ".precision must be in 1.." + std::to_string(vlfast::kMaxPrecision) + ", got " +
             std::to_string(precision));
    c.precision = static_cast<int>(precision);
    axis.starts = int32_array(starts, "starts", owner, c.out_size);
    axis.counts = int32_array(counts, "counts", owner, c.out_size);
    c.taps = weights.ndim() == 2 ? weights.shape(1) : 0;
    axis.weights = int32_array(weights, "weights", owner, c.out_size, c.taps);
    c.starts = axis.starts.data();
    c.counts = axis.counts.data();
    c.weights = axis.weights.data();

    // Every read in bounds, and no accumulator able to leave int32 (where the reference,
    // computing in int64, would differ).
    const int64_t bias = int64_t{1} << (c.precision - 1);
    for (int64_t i = 0; i < c.out_size; ++i) {
        const int64_t start = c.starts[i], count = c.counts[i];
        auto fail_here = [&](const std::string& message) { fail(owner + message + " at output " + std::to_string(i)); };
        if (count < 1) fail_here(".counts must be >= 1, got " + std::to_string(count));
        if (count > c.taps) fail_here(".counts exceed the " + std::to_string(c.taps) + " weight columns");
        if (start < 0) fail_here(".starts must be >= 0, got " + std::to_string(start));
        if (start + count > c.in_size) fail_here(" starts + counts exceed the input size " + std::to_string(c.in_size));
        int64_t highest = bias, lowest = bias;
        for (int64_t k = 0; k < count; ++k) {
            const int64_t weight = c.weights[i * c.taps + k];
            (weight > 0 ? highest : lowest) += 255 * weight;
        }
        if (highest > std::numeric_limits<int32_t>::max() || lowest < std::numeric_limits<int32_t>::min())
            fail_here(".weights can overflow the int32 accumulator");
        c.max_count = std::max(c.max_count, count);
    }
}

// A uint8 (height, width, channels) array with non-negative strides, at least 1x1x1.
vlfast::ImageView image_view(const py::array& image) {
    if (image.ndim() != 3)
        fail("image must have 3 dimensions (height, width, channels), got " + std::to_string(image.ndim()) +
             " with shape " + shape_of(image));
    if (image.dtype().kind() != 'u' || image.itemsize() != 1) fail("image must be uint8, got " + str(image.dtype()));
    if (image.shape(0) < 1 || image.shape(1) < 1 || image.shape(2) < 1)
        fail("image must be at least 1x1, got shape " + shape_of(image));
    for (py::ssize_t i = 0; i < 3; ++i)
        if (image.strides(i) < 0)
            fail("image strides must be non-negative, got " + std::to_string(image.strides(i)) + " on axis " +
                 std::to_string(i) + " (flipped view); pass np.ascontiguousarray(image)");
    return {static_cast<const uint8_t*>(image.data()), image.shape(0), image.shape(1), image.shape(2),
            image.strides(0), image.strides(1),         image.strides(2)};
}

// One frame's arguments, validated: the arrays are kept (alive while the GIL is released), the plans copied.
// Never copied or moved: the job points into it.
struct FrameCall {
    FrameCall() = default;
    FrameCall(const FrameCall&) = delete;
    FrameCall& operator=(const FrameCall&) = delete;

    py::object image, table, out;
    Axis horizontal, vertical;
    vlfast::FrameJob job{};
};

// run_frame's arguments (less num_threads), as the extension takes one frame.
using FrameArguments = std::tuple<py::object, std::optional<AxisArguments>, std::optional<AxisArguments>, bool,
                                  py::object, py::object, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;

// Validates one frame's arguments into `call` (which must not move afterwards: the job points into it).
void read_frame(const FrameArguments& arguments, FrameCall& call) {
    const auto& [image_object, horizontal_plan, vertical_plan, vertical_first, table_object, out_object, row_offset,
                 patch_size, merge_size, temporal_patch_size, slot_begin, slot_count] = arguments;
    // Layout parameters first: every size below is bounded by them and by real arrays.
    using vlfast::kMaxLayoutParameter;
    auto check_range = [](int64_t value, int64_t low, int64_t high, const char* name) {
        if (value < low || value > high)
            fail(std::string(name) + " must be in " + std::to_string(low) + ".." + std::to_string(high) + ", got " +
                 std::to_string(value));
    };
    check_range(patch_size, 1, kMaxLayoutParameter, "patch_size");
    check_range(merge_size, 1, kMaxLayoutParameter, "merge_size");
    check_range(temporal_patch_size, 1, kMaxLayoutParameter, "temporal_patch_size");
    check_range(slot_begin, 0, temporal_patch_size - 1, "slot_begin");
    check_range(slot_count, 1, temporal_patch_size - slot_begin, "slot_count");
    if (row_offset < 0) fail("row_offset must be >= 0, got " + std::to_string(row_offset));

    const py::array table = as_array(table_object, "table");
    call.table = table;
    if (table.ndim() != 2 || table.shape(1) != vlfast::kTableSize || table.shape(0) < 1)
        fail("table must have shape (channels, " + std::to_string(vlfast::kTableSize) + "), got " + shape_of(table));
    const int64_t item_size = table.itemsize();
    if (std::find(std::begin(vlfast::kItemSizes), std::end(vlfast::kItemSizes), item_size) ==
        std::end(vlfast::kItemSizes))
        fail("table items must be " + item_sizes_text() + " bytes, got " + std::to_string(item_size) + " (" +
             str(table.dtype()) + ")");
    if (!is_c_contiguous(table)) fail("table must be C-contiguous");
    const int64_t channels = table.shape(0);

    const py::array image = as_array(image_object, "image");
    call.image = image;
    const vlfast::ImageView view = image_view(image);
    if (view.channels != channels)
        fail("image has " + std::to_string(view.channels) + " channels but the table has " + std::to_string(channels));

    Axis& horizontal = call.horizontal;
    Axis& vertical = call.vertical;
    const bool has_horizontal = horizontal_plan.has_value(), has_vertical = vertical_plan.has_value();
    if (has_horizontal) read_axis(*horizontal_plan, "horizontal plan", view.width, "width", horizontal);
    if (has_vertical) read_axis(*vertical_plan, "vertical plan", view.height, "height", vertical);
    const int64_t out_height = has_vertical ? vertical.coefficients.out_size : view.height;
    const int64_t out_width = has_horizontal ? horizontal.coefficients.out_size : view.width;
    const int64_t factor = patch_size * merge_size;
    if (out_height % factor || out_width % factor)
        fail("resized size " + std::to_string(out_height) + "x" + std::to_string(out_width) +
             " is not a multiple of patch_size*merge_size=" + std::to_string(factor));

    py::array out = as_array(out_object, "out");
    call.out = out;
    if (out.ndim() != 2) fail("out must have 2 dimensions, got shape " + shape_of(out));
    if (!is_c_contiguous(out)) fail("out must be C-contiguous");
    if (!out.writeable()) fail("out must be writeable");
    if (out.itemsize() != item_size)
        fail("out items are " + std::to_string(out.itemsize()) + " bytes but table items are " +
             std::to_string(item_size));
    checked_mul(checked_mul(channels, temporal_patch_size, "row length"), patch_size * patch_size, "row length");
    const int64_t row_items = vlfast::patch_row_items(channels, temporal_patch_size, patch_size);
    if (out.shape(1) != row_items)
        fail("out rows must have channels*temporal_patch_size*patch_size^2 = " + std::to_string(row_items) +
             " items, got " + std::to_string(out.shape(1)));
    const int64_t frame_rows = checked_mul(out_height / patch_size, out_width / patch_size, "patch count");
    if (row_offset > out.shape(0) || frame_rows > out.shape(0) - row_offset) {
        // The last row in unsigned arithmetic: row_offset + frame_rows may pass INT64_MAX.
        const uint64_t last = static_cast<uint64_t>(row_offset) + static_cast<uint64_t>(frame_rows) - 1;
        fail("out has " + std::to_string(out.shape(0)) + " rows but this frame writes rows " +
             std::to_string(row_offset) + ".." + std::to_string(last));
    }
    check_no_overlap(out, {&image, &table}, "image or table");

    const vlfast::PatchTarget target{static_cast<uint8_t*>(out.mutable_data()),
                                     static_cast<const uint8_t*>(table.data()),
                                     static_cast<int>(item_size),
                                     row_offset,
                                     static_cast<int>(patch_size),
                                     static_cast<int>(merge_size),
                                     static_cast<int>(temporal_patch_size),
                                     static_cast<int>(slot_begin),
                                     static_cast<int>(slot_count)};
    call.job = {view, has_horizontal ? &horizontal.coefficients : nullptr,
                has_vertical ? &vertical.coefficients : nullptr, vertical_first, target};
}

// A table's formula as run_frame takes it: (scale, scale_in_float64, mean, std), layout.h TableFormula.
using FormulaArguments = std::tuple<double, bool, std::vector<double>, std::vector<double>>;

// `values` as float32, or ValueError unless each is a finite float32 value.
std::vector<float> float32_values(const std::vector<double>& values, const char* name) {
    std::vector<float> floats;
    for (double value : values) {
        const float single = static_cast<float>(value);
        if (!std::isfinite(value) || static_cast<double>(single) != value)
            fail(std::string("formula ") + name + " must hold finite float32 values, got " + std::to_string(value));
        floats.push_back(single);
    }
    return floats;
}

// The formula, validated; std::nullopt for None.
std::optional<vlfast::TableFormula> read_formula(const std::optional<FormulaArguments>& arguments) {
    if (!arguments) return std::nullopt;
    const auto& [scale, scale_in_float64, mean, std_dev] = *arguments;
    if (!std::isfinite(scale)) fail("formula scale must be finite, got " + std::to_string(scale));
    if (mean.empty() || mean.size() != std_dev.size())
        fail("formula mean and std must have one value per channel, got " + std::to_string(mean.size()) + " and " +
             std::to_string(std_dev.size()));
    vlfast::TableFormula formula;
    formula.scale = scale;
    formula.scale_float32 = static_cast<float>(scale);
    formula.scale_in_float64 = scale_in_float64;
    formula.mean = float32_values(mean, "mean");
    formula.std_dev = float32_values(std_dev, "std");
    return formula;
}

// ValueError unless `formula` (may be absent) has one mean per channel of `job`'s table.
void check_formula_channels(const std::optional<vlfast::TableFormula>& formula, const vlfast::FrameJob& job,
                            const std::string& name) {
    if (formula && static_cast<int64_t>(formula->mean.size()) != job.image.channels)
        fail(name + "the formula has " + std::to_string(formula->mean.size()) + " channels but the table has " +
             std::to_string(job.image.channels));
}

void run_frame(const py::object& image, const std::optional<AxisArguments>& horizontal,
               const std::optional<AxisArguments>& vertical, bool vertical_first, const py::object& table,
               const py::object& out, int64_t row_offset, int64_t patch_size, int64_t merge_size,
               int64_t temporal_patch_size, int64_t slot_begin, int64_t slot_count, int64_t num_threads,
               const std::optional<FormulaArguments>& formula_arguments) {
    const int threads = checked_threads(num_threads);
    const std::optional<vlfast::TableFormula> formula = read_formula(formula_arguments);
    FrameCall call;
    read_frame({image, horizontal, vertical, vertical_first, table, out, row_offset, patch_size, merge_size,
                temporal_patch_size, slot_begin, slot_count},
               call);
    check_formula_channels(formula, call.job, "");
    if (formula) call.job.formula = &*formula;
    py::gil_scoped_release release;
    vlfast::run_frame(call.job, threads);
}

// Validated frames, each an item of `frames` (a sequence of run_frame's arguments less num_threads): an
// error names the frame's index.
struct FrameCalls {
    FrameCalls(const py::sequence& frames, const std::optional<FormulaArguments>& formula_arguments)
        : formula(read_formula(formula_arguments)), calls(static_cast<size_t>(py::len(frames))) {
        jobs.reserve(calls.size());
        for (size_t i = 0; i < calls.size(); ++i) {
            const std::string name = "frame " + std::to_string(i) + ": ";
            FrameArguments arguments;
            try {
                arguments = frames[i].cast<FrameArguments>();
            } catch (const py::cast_error&) {
                const py::object item = frames[i];
                std::string got = str(py::type::handle_of(item).attr("__name__"));
                if (py::hasattr(item, "__len__")) got += " of " + std::to_string(py::len(item)) + " items";
                throw py::type_error(name + "expected a tuple of run_frame's " +
                                     std::to_string(std::tuple_size_v<FrameArguments>) +
                                     " arguments less num_threads, of the types it takes; got " + got);
            }
            try {
                read_frame(arguments, calls[i]);
            } catch (const std::invalid_argument& error) {
                fail(name + error.what());
            }
            check_formula_channels(formula, calls[i].job, name);
            if (formula) calls[i].job.formula = &*formula;
            jobs.push_back(calls[i].job);
        }
    }
    std::optional<vlfast::TableFormula> formula;  // the jobs point to it
    std::vector<FrameCall> calls;  // never resized: the jobs point into the calls
    std::vector<vlfast::FrameJob> jobs;
};

// Every frame validated (nothing is written when one is not), then run.
void run_frames(const py::sequence& frames, int64_t num_threads,
                const std::optional<FormulaArguments>& formula) {
    const int threads = checked_threads(num_threads);
    const FrameCalls checked(frames, formula);
    py::gil_scoped_release release;
    vlfast::run_frames(checked.jobs, threads);
}

// The frames run_frames runs side by side: for the tests.
std::vector<size_t> frames_side_by_side(const py::sequence& frames, int64_t num_threads) {
    const int threads = checked_threads(num_threads);
    return vlfast::side_by_side(FrameCalls(frames, std::nullopt).jobs, threads);
}

// One pass of `plan` (an AxisPlan) over a C-contiguous uint8 image into `out`, on the
// calling thread: for the pass benchmark and the kernel tests.
void resample_axis(const py::object& image_object, const AxisArguments& plan, bool vertical,
                   const py::object& out_object) {
    py::array image = as_array(image_object, "image");
    const vlfast::ImageView view = image_view(image);
    if (!is_c_contiguous(image)) fail("image must be C-contiguous");
    Axis axis;
    if (vertical)
        read_axis(plan, "vertical plan", view.height, "height", axis);
    else
        read_axis(plan, "horizontal plan", view.width, "width", axis);
    const int64_t out_height = vertical ? axis.coefficients.out_size : view.height;
    const int64_t out_width = vertical ? view.width : axis.coefficients.out_size;

    py::array out = as_array(out_object, "out");
    if (out.dtype().kind() != 'u' || out.itemsize() != 1) fail("out must be uint8, got " + str(out.dtype()));
    if (out.ndim() != 3 || out.shape(0) != out_height || out.shape(1) != out_width || out.shape(2) != view.channels)
        fail("out must have shape (" + std::to_string(out_height) + ", " + std::to_string(out_width) + ", " +
             std::to_string(view.channels) + "), got " + shape_of(out));
    if (!is_c_contiguous(out)) fail("out must be C-contiguous");
    if (!out.writeable()) fail("out must be writeable");
    const uint8_t* in_begin = view.data;
    const uint8_t* in_end = in_begin + image.nbytes();
    const uint8_t* out_begin = static_cast<const uint8_t*>(out.data());
    if (out_begin < in_end && in_begin < out_begin + out.nbytes()) fail("out must not overlap image");

    uint8_t* out_data = static_cast<uint8_t*>(out.mutable_data());
    py::gil_scoped_release release;
    vlfast::resample_axis(view, axis.coefficients, vertical, out_data);
}

// The window the horizontal pass of `plan` (an AxisPlan) over rows of `channels` channels gathers from, or 0.
int64_t horizontal_gather_window(const AxisArguments& plan, int64_t channels) {
    if (channels < 1) fail("channels must be >= 1, got " + std::to_string(channels));
    Axis axis;
    read_axis(plan, "horizontal plan", std::get<0>(plan), "width", axis);
    checked_mul(std::max(axis.coefficients.in_size, axis.coefficients.out_size), channels, "a row");
    return vlfast::horizontal_gather_window(axis.coefficients, channels);
}

// The item size of `table`, or ValueError unless it is a C-contiguous (channels, kTableSize) array of one of
// kItemSizes (computes_items' and expand's tables; read_frame's names its problems one by one).
int64_t checked_table(const py::array& table) {
    if (table.ndim() != 2 || table.shape(1) != vlfast::kTableSize || table.shape(0) < 1 || !is_c_contiguous(table))
        fail("table must be a C-contiguous (channels, " + std::to_string(vlfast::kTableSize) + ") array, got shape " +
             shape_of(table));
    const int64_t item_size = table.itemsize();
    if (std::find(std::begin(vlfast::kItemSizes), std::end(vlfast::kItemSizes), item_size) ==
        std::end(vlfast::kItemSizes))
        fail("table items must be " + item_sizes_text() + " bytes, got " + std::to_string(item_size) + " (" +
             str(table.dtype()) + ")");
    return item_size;
}

// How run_frame, at simd_level(), makes the items of `table` given `formula`: None (looked up), "formula"
// (computed with its arithmetic) or "affine" (computed as v * slope + intercept).
py::object computes_items(const py::object& table_object, const FormulaArguments& formula_arguments) {
    const py::array table = as_array(table_object, "table");
    const int64_t item_size = checked_table(table);
    const vlfast::TableFormula formula = *read_formula(formula_arguments);
    const vlfast::LookupTable lookup =
        vlfast::lookup_table(static_cast<const uint8_t*>(table.data()), table.shape(0), static_cast<int>(item_size),
                             vlfast::layout_kernels(vlfast::simd_level()), &formula);
    if (!lookup.formula) return py::none();
    return py::str(lookup.affine ? "affine" : "formula");
}

// The compact hand-off's expansion: uint8 `compact` (rows, C * area) and `table` (C, 256) into
// `out` (rows, C * T * area), T = out's columns / compact's.
void expand(const py::object& compact_object, const py::object& table_object, const py::object& out_object,
            int64_t num_threads) {
    const int threads = checked_threads(num_threads);
    py::array compact = as_array(compact_object, "compact");
    if (compact.dtype().kind() != 'u' || compact.itemsize() != 1)
        fail("compact must be uint8, got " + str(compact.dtype()));
    if (compact.ndim() != 2 || !is_c_contiguous(compact))
        fail("compact must be a C-contiguous (rows, channels * patch_size^2) array, got shape " + shape_of(compact));
    py::array table = as_array(table_object, "table");
    const int64_t item_size = checked_table(table);
    const int64_t channels = table.shape(0), rows = compact.shape(0), columns = compact.shape(1);
    if (columns < 1 || columns % channels)
        fail("compact has " + std::to_string(columns) + " columns, not a positive multiple of the table's " +
             std::to_string(channels) + " channels");
    py::array out = as_array(out_object, "out");
    if (out.ndim() != 2 || !is_c_contiguous(out))
        fail("out must be a C-contiguous 2-D array, got shape " + shape_of(out));
    if (!out.writeable()) fail("out must be writeable");
    if (out.itemsize() != item_size)
        fail("out items are " + std::to_string(out.itemsize()) + " bytes but table items are " +
             std::to_string(item_size));
    if (out.shape(0) != rows || out.shape(1) < 1 || out.shape(1) % columns)
        fail("out must have shape (" + std::to_string(rows) + ", T * " + std::to_string(columns) + "), got " +
             shape_of(out));
    check_no_overlap(out, {&compact, &table}, "compact or table");
    const int64_t temporal = out.shape(1) / columns;
    const uint8_t* compact_data = static_cast<const uint8_t*>(compact.data());
    const uint8_t* table_data = static_cast<const uint8_t*>(table.data());
    uint8_t* out_data = static_cast<uint8_t*>(out.mutable_data());
    py::gil_scoped_release release;
    vlfast::expand_patches(compact_data, rows, channels, columns / channels, temporal, table_data,
                           static_cast<int>(item_size), out_data, threads);
}

// The items each slot of parallel_items(count, slots) ran, in the order it ran them; slot i
// sleeps delays_us[i] microseconds per item. For the scheduler's tests.
std::vector<std::vector<int64_t>> parallel_items_schedule(int64_t count, const std::vector<int64_t>& delays_us) {
    const int64_t slots = static_cast<int64_t>(delays_us.size());
    if (count < 0 || count > (int64_t{1} << 20)) fail("count must be in [0, 2^20], got " + std::to_string(count));
    if (slots < 1 || slots > vlfast::kMaxThreads)
        fail("delays_us must name 1 to " + std::to_string(vlfast::kMaxThreads) + " slots, got " +
             std::to_string(slots));
    for (int64_t delay : delays_us)
        if (delay < 0 || delay > 100000) fail("delays_us must be in [0, 100000], got " + std::to_string(delay));
    std::vector<std::vector<int64_t>> ran(static_cast<size_t>(slots));
    for (auto& items : ran) items.reserve(static_cast<size_t>(count));  // the threads never allocate
    py::gil_scoped_release release;
    vlfast::parallel_items(count, slots, [&](int64_t slot, const std::function<int64_t()>& next) {
        for (int64_t item; (item = next()) >= 0;) {
            std::this_thread::sleep_for(std::chrono::microseconds(delays_us[static_cast<size_t>(slot)]));
            ran[static_cast<size_t>(slot)].push_back(item);
        }
    });
    return ran;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
    m.doc() = "vlfast CPU kernel: fused fixed-point resize, table lookup and patch layout.";
    m.def("run_frame", &run_frame, py::arg("image"), py::arg("horizontal"), py::arg("vertical"),
          py::arg("vertical_first"), py::arg("table"), py::arg("out"), py::arg("row_offset"), py::arg("patch_size"),
          py::arg("merge_size"), py::arg("temporal_patch_size"), py::arg("slot_begin"), py::arg("slot_count"),
          py::arg("num_threads"), py::arg("formula") = py::none(),
          "Resize one uint8 HWC frame with two optional axes, each an AxisPlan's fields (in_size, out_size, "
          "starts, counts, weights, precision) or None, look it up in `table` (C, 256) and write its "
          "patch rows into `out` from `row_offset`, temporal slots slot_begin..slot_begin+slot_count-1. "
          "`formula`: None, or the table's (scale, scale_in_float64, mean, std) (vlfast.tables.TableFormula), "
          "which the kernels may compute items with once it has given every entry's bits. "
          "Raises ValueError on invalid arguments; releases the GIL while it runs.");
    m.def("run_frames", &run_frames, py::arg("frames"), py::arg("num_threads"), py::arg("formula") = py::none(),
          "Run a list of frames, each a tuple of run_frame's arguments less num_threads, on up to num_threads "
          "threads: frames too small to split run side by side, a frame per thread, when no two write the same "
          "bytes; `formula` as run_frame's, for every frame. Every frame is checked first (ValueError naming the "
          "frame's index); releases the GIL while they run.");
    m.def("frames_side_by_side", &frames_side_by_side, py::arg("frames"), py::arg("num_threads"),
          "The indices of the frames run_frames(frames, num_threads) runs side by side, a frame per thread (empty: "
          "each frame on its own, in order). For the tests.");
    m.def("resample_axis", &resample_axis, py::arg("image"), py::arg("plan"), py::arg("vertical"), py::arg("out"),
          "One pass of `plan` (an AxisPlan's fields, as run_frame takes them) over a C-contiguous uint8 (H, W, C) "
          "image into `out`, uint8 (H', W, C) "
          "for the vertical pass or (H, W', C) for the horizontal one, on the calling thread with the kernels "
          "simd_level() picks. For the pass benchmark and the kernel tests. Raises ValueError on invalid "
          "arguments; releases the GIL while it runs.");
    m.def("horizontal_gather_window", &horizontal_gather_window, py::arg("plan"), py::arg("channels"),
          "The window, in bytes, of the input row from which the horizontal pass of `plan` (an AxisPlan's "
          "fields) over rows of `channels` interleaved channels gathers each group of output bytes at "
          "simd_level() (16 bytes from 64, else from 128, at AVX-512; 4 from 16 at AVX2), or 0 where it runs the "
          "transposing or the portable kernel. For the tests and the pass benchmark. Raises ValueError on an "
          "invalid plan.");
    m.def("parallel_items_schedule", &parallel_items_schedule, py::arg("count"), py::arg("delays_us"),
          "The items 0..count-1 each of len(delays_us) threads ran through the kernels' scheduler (a run of "
          "its own, then steals), a list per slot in the order it ran them; slot i sleeps delays_us[i] us per "
          "item. For the tests. Raises ValueError on invalid arguments; releases the GIL.");
    m.def(
        "prepared_axis_hits", [] { return vlfast::prepared_axis_hits(); },
        "How many horizontal axes run_frame, resample_axis and horizontal_gather_window found prepared (paired "
        "weights, gather tables) among the last four this thread prepared, so far. For the tests.");
    m.def("computes_items", &computes_items, py::arg("table"), py::arg("formula"),
          "How run_frame, at simd_level(), makes the items of `table` (C, 256) given `formula` (as run_frame "
          "takes it): None where it looks them up; 'formula' where it computes them with the formula's "
          "arithmetic, 'affine' where as float32 v * slope + intercept (the formula folded), each only where "
          "the level's kernels can and, computed so by them, every entry has the table's bits. For the tests "
          "and the benchmarks. Raises ValueError on an invalid table or formula.");
    m.def("expand", &expand, py::arg("compact"), py::arg("table"), py::arg("out"), py::arg("num_threads"),
          "The compact hand-off's expansion: out[r, (c*T + t)*A + j] = table[c, compact[r, c*A + j]] for every "
          "temporal slot t, with uint8 `compact` (rows, C*A), `table` (C, 256) and `out` (rows, C*T*A) of the "
          "table's item size (copied bit for bit). Raises ValueError on invalid arguments; releases the GIL.");
    m.def(
        "simd_level", [] { return level_name(vlfast::simd_level()); },
        "The instruction set the kernels run with now: 'avx512', 'avx2' or 'portable'.");
    m.def(
        "simd_levels",
        [] {
            std::vector<std::string> levels;
            for (int level = 0; level <= static_cast<int>(vlfast::cpu_simd_level()); ++level)
                levels.push_back(level_name(static_cast<vlfast::SimdLevel>(level)));
            return levels;
        },
        "The levels this CPU can run, lowest ('portable') first.");
    // The constants shared with the Python package (constants.h); tests hold them to Python's.
    m.attr("TABLE_SIZE") = vlfast::kTableSize;
    py::tuple item_sizes(std::size(vlfast::kItemSizes));
    for (size_t i = 0; i < std::size(vlfast::kItemSizes); ++i) item_sizes[i] = vlfast::kItemSizes[i];
    m.attr("ITEM_SIZES") = item_sizes;
    m.attr("MAX_PRECISION") = vlfast::kMaxPrecision;
    m.attr("MAX_LAYOUT_PARAMETER") = vlfast::kMaxLayoutParameter;
    m.def("patch_row_items", &vlfast::patch_row_items, py::arg("channels"), py::arg("temporal_patch_size"),
          py::arg("patch_size"),
          "Items in one patch row of pixel_values: channels * temporal_patch_size * patch_size^2.");
    m.def(
        "set_simd_level", [](const std::string& cap) { return level_name(vlfast::set_simd_level(parse_level(cap))); },
        py::arg("cap"),
        "Caps the kernels' instruction set at `cap` ('avx512', 'avx2' or 'portable'), for tests and benchmarks; "
        "returns simd_level(), which is lower where the CPU lacks `cap`. Raises ValueError on another name. "
          "A frame already running keeps the kernels it started with.");
}
