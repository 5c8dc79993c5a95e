// The fused CPU kernel of frozen grid classification losses over the labelled class's
// log-probability (learnedloss.functional.classification): the log-softmax, the loss and its
// gradient with respect to the logits in one call. The general path is the reference.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

namespace learnedloss {
namespace {

// A frozen 1-D cubic Hermite spline h over [lo, hi] (GridNetwork), one set of intervals per
// value of the target axis (one set without it), extended linearly beyond its ends.
template <typename T>
struct Spline {
  const T* a;
  const T* b;
  const T* c;
  const T* d;
  int64_t intervals;  // per set: knots - 1
  T lo;
  T per_unit;  // (knots - 1) / (hi - lo)

  // h(x) and dh/dx in the intervals of `set` (x finite).
  inline void operator()(int set, T x, T* h, T* slope_x) const {
    const T u = (x - lo) * per_unit;
    T cell = std::floor(u);
    cell = std::min(std::max(cell, T(0)), static_cast<T>(intervals - 1));
    const T local = u - cell;
    const T clamped = std::min(std::max(local, T(0)), T(1));
    const T excess = local - clamped;
    const int k = set * static_cast<int>(intervals) + static_cast<int>(cell);  // 32-bit gathers
    const T value = a[k] + clamped * (b[k] + clamped * (c[k] + clamped * d[k]));
    const T slope = b[k] + clamped * (T(2) * c[k] + T(3) * clamped * d[k]);
    *h = value + excess * slope;
    *slope_x = slope * per_unit;
  }
};

struct Call {
  int64_t rows;
  int64_t classes;
  bool target_axis;  // h reads whether the class is the labelled one
  bool scale_form;   // (1 + h) * CE term; otherwise CE term + h
  int64_t reduction;  // 0 none, 1 mean, 2 sum
  bool want_gradient;
  double divisor;  // of the sum: the number of samples for the mean, else 1
};

// Scale form: only the labelled class has a nonzero CE term, so only it reads h. Fills each
// sample's loss and dloss/dlog p_y; returns the sum of the losses.
template <typename T>
double scale_form(const T* lp, const int64_t* target, const Spline<T>& h, const Call& call,
                  T* losses, T* weights) {
  const T per_sample = static_cast<T>(1.0 / call.divisor);
  double total = 0.0;
  for (int64_t n = 0; n < call.rows; ++n) {
    const T labelled = lp[n * call.classes + target[n]];
    T value, slope;
    h(call.target_axis ? 1 : 0, labelled, &value, &slope);
    const T loss = (T(1) + value) * -labelled;
    losses[n] = loss;
    weights[n] = (-(T(1) + value) - labelled * slope) * per_sample;
    total += double(loss);
  }
  return total;
}

// Add form: every class reads h. Fills each sample's loss and every dloss/dlog p (into
// `slopes`); returns the sum of the losses. The loop over classes reads h as for a class that
// is not the labelled one; the labelled class is then corrected (its CE term, and h's other
// set of knots where h reads the target axis), so that the loop has no branch.
template <typename T>
double add_form(const T* lp, const int64_t* target, const Spline<T>& h, const Call& call,
                T* losses, T* slopes) {
  const T per_sample = static_cast<T>(1.0 / call.divisor);
  // summed in blocks, the blocks in double: the general path's sum over classes is pairwise,
  // and one long float sum over 1000 classes would differ from it visibly
  constexpr int64_t kBlock = 64;
  double total = 0.0;
  for (int64_t n = 0; n < call.rows; ++n) {
    const T* __restrict row = lp + n * call.classes;
    T* __restrict slope_row = slopes + n * call.classes;
    double sum = 0.0;
    for (int64_t start = 0; start < call.classes; start += kBlock) {
      const int64_t stop = std::min(call.classes, start + kBlock);
      T block = 0;
      for (int64_t c = start; c < stop; ++c) {  // scalar: gathers were slower on AVX2 CPUs
        T value, slope;
        h(0, row[c], &value, &slope);
        block += value;
        slope_row[c] = slope * per_sample;
      }
      sum += double(block);
    }
    const int64_t label = target[n];
    const T labelled = row[label];
    T value = 0, slope = 0, unlabelled_value = 0, unlabelled_slope = 0;
    h(call.target_axis ? 1 : 0, labelled, &value, &slope);
    h(0, labelled, &unlabelled_value, &unlabelled_slope);
    sum += double(value - unlabelled_value) - double(labelled);
    slope_row[label] = (slope - T(1)) * per_sample;
    losses[n] = static_cast<T>(sum);
    total += sum;
  }
  return total;
}

template <typename T>
std::vector<at::Tensor> classification_typed(const at::Tensor& logits, const at::Tensor& target,
                                             const at::Tensor& columns, double lo, double hi,
                                             double limit, const Call& call) {
  const auto dtype = columns.scalar_type();
  const at::Tensor x = logits.to(dtype).reshape({call.rows, call.classes}).contiguous();
  const at::Tensor labels = target.reshape({call.rows}).to(at::kLong).contiguous();
  const auto unusable = [&]() -> std::vector<at::Tensor> {
    const bool per_sample = call.reduction == 0;
    return {at::zeros(per_sample ? target.sizes() : at::IntArrayRef{}, logits.options()),
            at::zeros(call.want_gradient ? logits.sizes() : at::IntArrayRef{0}, logits.options()),
            at::zeros({}, logits.options().dtype(at::kBool))};
  };
  const int64_t* y = labels.data_ptr<int64_t>();
  for (int64_t n = 0; n < call.rows; ++n) {
    if (y[n] < 0 || y[n] >= call.classes) return unusable();  // the general path says why
  }
  at::Tensor lp = at::log_softmax(x, 1);
  const T* lp_data = lp.data_ptr<T>();
  // -inf (masked) or NaN logits, or log-probabilities beyond the limit the general path
  // evaluates its network at: the general path
  const T cap = static_cast<T>(limit);
  int within = 1;
  const int64_t count = call.rows * call.classes;
#pragma omp simd reduction(& : within)
  for (int64_t i = 0; i < count; ++i) within &= static_cast<int>(std::abs(lp_data[i]) <= cap);
  if (!within) return unusable();

  const at::Tensor table = columns.contiguous();  // (4, sets * intervals)
  const int64_t width = table.size(1);
  const int64_t sets = call.target_axis ? 2 : 1;
  const T* coefficients = table.data_ptr<T>();
  const Spline<T> h{coefficients,
                    coefficients + width,
                    coefficients + 2 * width,
                    coefficients + 3 * width,
                    width / sets,
                    static_cast<T>(lo),
                    static_cast<T>(double(width / sets) / (hi - lo))};
  at::Tensor losses = at::empty({call.rows}, x.options());
  at::Tensor slopes = call.scale_form ? at::empty({call.rows}, x.options())
                                      : at::empty({call.rows, call.classes}, x.options());
  const double total =
      call.scale_form
          ? scale_form<T>(lp_data, y, h, call, losses.data_ptr<T>(), slopes.data_ptr<T>())
          : add_form<T>(lp_data, y, h, call, losses.data_ptr<T>(), slopes.data_ptr<T>());
  at::Tensor value = call.reduction == 0
                         ? losses.view(target.sizes())
                         : at::scalar_tensor(total / call.divisor, x.options().dtype(at::kDouble));
  at::Tensor gradient = at::zeros({0}, logits.options());
  if (call.want_gradient) {
    // d loss / d logit_c = g_c - p_c * sum_k g_k, with g = d loss / d log p
    at::Tensor probability = lp.exp_();
    T* p = probability.data_ptr<T>();
    const T* g = slopes.data_ptr<T>();
    if (call.scale_form) {  // g is the weight at the labelled class only
      for (int64_t n = 0; n < call.rows; ++n) {
        T* row = p + n * call.classes;
        const T weight = g[n];
#pragma omp simd
        for (int64_t c = 0; c < call.classes; ++c) row[c] *= -weight;
        row[y[n]] += weight;
      }
      gradient = probability;
    } else {
      T* out = slopes.data_ptr<T>();
      for (int64_t n = 0; n < call.rows; ++n) {
        T* row = out + n * call.classes;
        const T* prob = p + n * call.classes;
        T sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t c = 0; c < call.classes; ++c) sum += row[c];
#pragma omp simd
        for (int64_t c = 0; c < call.classes; ++c) row[c] -= prob[c] * sum;
      }
      gradient = slopes;
    }
    gradient = gradient.view(logits.sizes()).to(logits.scalar_type());
  }
  return {value.to(logits.scalar_type()), gradient,
          at::ones({}, logits.options().dtype(at::kBool))};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> grid_classification(
    const at::Tensor& logits, const at::Tensor& target, const at::Tensor& columns, double lo,
    double hi, double limit, bool target_axis, bool scale_form, int64_t reduction,
    bool want_gradient) {
  TORCH_CHECK(logits.dim() == 1 || logits.dim() == 2,
              "grid_classification: logits are (C) or (N, C)");
  TORCH_CHECK(target.dim() == logits.dim() - 1 && !at::isFloatingType(target.scalar_type()),
              "grid_classification: targets are class indices, (N) or ()");
  TORCH_CHECK(columns.dim() == 2 && columns.size(0) == 4,
              "grid_classification: columns are the spline's (4, intervals) coefficients");
  TORCH_CHECK(columns.size(1) % (target_axis ? 2 : 1) == 0 && hi > lo,
              "grid_classification: one set of intervals per target value");
  TORCH_CHECK(reduction >= 0 && reduction <= 2, "grid_classification: reduction is 0, 1 or 2");
  const int64_t classes = logits.size(-1);
  TORCH_CHECK(classes > 0 && logits.numel() > 0, "grid_classification: an empty call");
  const int64_t rows = logits.numel() / classes;
  const Call call{rows,      classes,   target_axis, scale_form,
                  reduction, want_gradient, reduction == 1 ? double(rows) : 1.0};
  std::vector<at::Tensor> out;
  if (columns.scalar_type() == at::kDouble) {
    out = classification_typed<double>(logits, target, columns, lo, hi, limit, call);
  } else {
    TORCH_CHECK(columns.scalar_type() == at::kFloat,
                "grid_classification: columns are float32 or float64");
    out = classification_typed<float>(logits, target, columns, lo, hi, limit, call);
  }
  return {out[0], out[1], out[2]};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(learnedloss, m) {
  m.def(
      "grid_classification(Tensor logits, Tensor target, Tensor columns, float lo, float hi, "
      "float limit, bool target_axis, bool scale_form, int reduction, bool want_gradient) "
      "-> (Tensor value, Tensor gradient, Tensor usable)");
}

TORCH_LIBRARY_IMPL(learnedloss, CPU, m) { m.impl("grid_classification", &grid_classification); }

}  // namespace learnedloss
