// The fused CPU kernel of frozen monotone regression losses (learnedloss.functional.monotone):
// one call computes the residual, its robust scale and contamination, the loss and its input
// gradient, in two passes over the elements. The eager path in monotone.py is the reference.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

namespace learnedloss {
namespace {

constexpr int64_t kRobustScaleSample = 8192;  // kinds.regression.ROBUST_SCALE_SAMPLE
constexpr double kContaminationThreshold = 3.0;  // kinds.regression.CONTAMINATION_THRESHOLD

struct Statistics {
  double scale;
  double contamination;
};

// The evenly spaced sample's magnitudes |x - t| (kinds.regression.evenly_spaced_sample);
// false where one of them is not finite (the call then takes the general path).
template <typename T>
bool sample_magnitudes(const T* x, const T* t, int64_t n, std::vector<T>* sample) {
  const int64_t stride = (n + kRobustScaleSample - 1) / kRobustScaleSample;
  sample->reserve(n / stride + 1);
  bool finite = true;
  for (int64_t i = 0; i < n; i += stride) {
    const T m = std::abs(x[i] - t[i]);
    finite &= std::isfinite(m);
    sample->push_back(m);
  }
  return finite;
}

// kinds.regression.robust_scale and contamination over the sample (all finite).
template <typename T>
Statistics statistics(std::vector<T>& sample) {
  const int64_t count = static_cast<int64_t>(sample.size());
  double total = 0.0;
  for (const T m : sample) total += double(m);
  const T mean = static_cast<T>(total / double(count));
  std::vector<T> ordered(sample);
  auto middle = ordered.begin() + (count - 1) / 2;  // the lower median, as torch.median
  std::nth_element(ordered.begin(), middle, ordered.end());
  T scale = std::max(*middle, static_cast<T>(1e-3 * double(mean)));
  scale = std::max(scale, std::numeric_limits<T>::min());
  const T threshold = static_cast<T>(kContaminationThreshold * double(scale));
  int64_t beyond = 0;
  for (const T m : sample) beyond += m > threshold;
  return {double(scale), double(beyond) / double(count)};
}

// The call's shape as three columns (a, b, c) per interval: R(z) = a + b z + c z^2.
template <typename T>
struct Columns {
  std::vector<T> a, b, c;
};

// One pass over the elements: each one's shape value (times s^2 into `values`) and its input
// gradient (into `gradient`); returns false where an input, a target or a scaled residual is
// not finite or beyond `cap` (the call then takes the general path). `*total` gets the sum of
// the shape values.
template <typename T, bool kValues, bool kGradient>
bool evaluate(const T* x, const T* t, T* values, T* gradient, int64_t n, const Columns<T>& table,
              double knot_spacing, double scale, double factor, double cap, double* total) {
  const T inverse = static_cast<T>(1.0 / scale), s2 = static_cast<T>(scale * scale);
  const T f = static_cast<T>(factor), limit = static_cast<T>(cap);
  // the knots are evenly spaced from 0: interval k holds z in [k, k + 1) spacings (the last
  // one, the tail, everything beyond); at a knot either neighbour gives the same value and
  // slope (the shape is continuously differentiable), so rounding there changes nothing
  const T per_knot = static_cast<T>(1.0 / knot_spacing);
  const T last = static_cast<T>(table.a.size() - 1);
  const T* A = table.a.data();
  const T* B = table.b.data();
  const T* C = table.c.data();
  constexpr int64_t kBlock = 1024;  // float sums per block, blocks summed in double
  double sum = 0.0;
  int usable = 1;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t stop = std::min(n, start + kBlock);
    T block = 0;
#pragma omp simd reduction(+ : block) reduction(& : usable)
    for (int64_t i = start; i < stop; ++i) {
      const T r = x[i] - t[i];
      const T z = std::abs(r) * inverse;
      // false for NaN and infinities; inputs and targets within the limit as well, as the
      // eager path requires
      usable &= static_cast<int>((z <= limit) & (std::abs(x[i]) <= limit) &
                                 (std::abs(t[i]) <= limit));
      T q = z * per_knot;
      q = q <= last ? q : last;  // NaN lands in the tail, harmlessly (the call is refused)
      const int k = static_cast<int>(q);
      const T a = A[k], b = B[k], c = C[k];
      const T shape = a + z * (b + c * z);
      block += shape;
      if constexpr (kValues) values[i] = shape * s2;
      if constexpr (kGradient) {
        const T sign = static_cast<T>(r > T(0)) - static_cast<T>(r < T(0));
        gradient[i] = (b + T(2) * c * z) * sign * f;
      }
    }
    sum += double(block);
  }
  *total = sum;
  return usable != 0;
}

// The (curves, K, 3) coefficients as the call's columns: the one curve, or its two curves
// around the call's contamination blended linearly (MonotoneNetwork.shape_at).
template <typename T>
Columns<T> blend(const at::Tensor& coefficients, double contamination, double lo, double hi) {
  const int64_t curves = coefficients.size(0), rows = coefficients.size(1);
  const T* first = coefficients.data_ptr<T>();
  const T* second = first;
  T weight = 0;
  if (curves > 1) {
    double position = std::min(std::max((contamination - lo) / (hi - lo), 0.0), 1.0);
    position *= double(curves - 1);
    const int64_t row = std::min(static_cast<int64_t>(position), curves - 2);
    weight = static_cast<T>(position - double(row));
    first += row * rows * 3;
    second = first + rows * 3;
  }
  Columns<T> columns{std::vector<T>(rows), std::vector<T>(rows), std::vector<T>(rows)};
  for (int64_t k = 0; k < rows; ++k) {
    columns.a[k] = first[3 * k] + weight * (second[3 * k] - first[3 * k]);
    columns.b[k] = first[3 * k + 1] + weight * (second[3 * k + 1] - first[3 * k + 1]);
    columns.c[k] = first[3 * k + 2] + weight * (second[3 * k + 2] - first[3 * k + 2]);
  }
  return columns;
}

// A call's outcome: its value and input gradient, whether the call could be computed here,
// and what a differentiable recomputation of the gradient needs (the scale, the gradient's
// factor and the call's blended (K, 3) coefficients).
struct Outcome {
  at::Tensor value;
  at::Tensor gradient;
  bool usable;
  double scale;
  double factor;
  at::Tensor table;
};

// Reductions as learnedloss.functional.reduction: 0 none, 1 mean, 2 sum.
template <typename T>
Outcome monotone_typed(
    const at::Tensor& input, const at::Tensor& target, const at::Tensor& coefficients,
    const at::Tensor& boundaries, double lo, double hi, double limit, int64_t reduction,
    bool want_gradient, bool want_table) {
  const auto dtype = coefficients.scalar_type();
  const at::Tensor x = input.to(dtype).contiguous();
  const at::Tensor t = target.to(dtype).contiguous();
  const int64_t n = x.numel();
  // A call the general path must take: outputs of the usual shapes, flagged unusable.
  const auto unusable = [&]() -> Outcome {
    return {at::zeros(reduction == 0 ? input.sizes() : at::IntArrayRef{}, input.options()),
            at::zeros(want_gradient ? input.sizes() : at::IntArrayRef{0}, input.options()),
            false, 1.0, 1.0, at::Tensor()};
  };
  std::vector<T> sample;
  if (!sample_magnitudes(x.data_ptr<T>(), t.data_ptr<T>(), n, &sample)) return unusable();
  const Statistics stats = statistics(sample);
  const Columns<T> table = blend<T>(coefficients.contiguous(), stats.contamination, lo, hi);
  const double divisor = reduction == 1 ? double(n) : 1.0;
  at::Tensor values = reduction == 0 ? at::empty({n}, x.options()) : at::Tensor();
  at::Tensor gradient = want_gradient ? at::empty({n}, x.options()) : at::Tensor();
  T* value_data = reduction == 0 ? values.data_ptr<T>() : nullptr;
  T* gradient_data = want_gradient ? gradient.data_ptr<T>() : nullptr;
  const double spacing = double(boundaries.contiguous().data_ptr<T>()[0]);
  TORCH_CHECK(spacing > 0.0, "monotone_regression: the knots are evenly spaced from 0");
  double total = 0.0;
  const auto run = [&](auto kernel) {
    return kernel(x.data_ptr<T>(), t.data_ptr<T>(), value_data, gradient_data, n, table,
                  spacing, stats.scale, stats.scale / divisor, limit, &total);
  };
  bool usable;
  if (reduction == 0) {
    usable = want_gradient ? run(evaluate<T, true, true>) : run(evaluate<T, true, false>);
  } else {
    usable = want_gradient ? run(evaluate<T, false, true>) : run(evaluate<T, false, false>);
  }
  if (!usable) return unusable();
  at::Tensor value;
  if (reduction == 0) {
    value = values.view(input.sizes()).to(input.scalar_type());
  } else {
    // a value beyond the dtype's range becomes inf (a plain cast would be undefined)
    const double reduced = total / divisor * stats.scale * stats.scale;
    const double largest = double(std::numeric_limits<T>::max());
    const T saturated = std::abs(reduced) <= largest ? static_cast<T>(reduced)
                                                     : std::copysign(
                                                           std::numeric_limits<T>::infinity(),
                                                           static_cast<T>(reduced > 0 ? 1 : -1));
    value = at::scalar_tensor(saturated, x.options()).to(input.scalar_type());
  }
  at::Tensor grad_out = want_gradient ? gradient.view(input.sizes()).to(input.scalar_type())
                                      : at::zeros({0}, input.options());
  at::Tensor columns;
  if (want_table) {
    const int64_t rows = static_cast<int64_t>(table.a.size());
    columns = at::empty({rows, 3}, x.options());
    T* column_data = columns.data_ptr<T>();
    for (int64_t k = 0; k < rows; ++k) {
      column_data[3 * k] = table.a[k];
      column_data[3 * k + 1] = table.b[k];
      column_data[3 * k + 2] = table.c[k];
    }
  }
  return {value, grad_out, true, stats.scale, stats.scale / divisor, columns};
}

Outcome compute(const at::Tensor& input, const at::Tensor& target, const at::Tensor& coefficients,
                const at::Tensor& boundaries, double contamination_lo, double contamination_hi,
                double limit, int64_t reduction, bool want_gradient, bool want_table = false) {
  TORCH_CHECK(input.numel() > 0 && input.numel() == target.numel(),
              "monotone_regression: input and target need the same, nonzero number of elements");
  TORCH_CHECK(coefficients.dim() == 3 && coefficients.size(2) == 3,
              "monotone_regression: coefficients must be (curves, intervals, 3)");
  TORCH_CHECK(boundaries.scalar_type() == coefficients.scalar_type(),
              "monotone_regression: boundaries and coefficients need one dtype");
  TORCH_CHECK(boundaries.numel() >= 1 && boundaries.numel() + 1 == coefficients.size(1),
              "monotone_regression: one more interval than inner knots, at least one knot");
  TORCH_CHECK(reduction >= 0 && reduction <= 2, "monotone_regression: reduction is 0, 1 or 2");
  if (coefficients.scalar_type() == at::kDouble) {
    return monotone_typed<double>(input, target, coefficients, boundaries, contamination_lo,
                                  contamination_hi, limit, reduction, want_gradient, want_table);
  }
  TORCH_CHECK(coefficients.scalar_type() == at::kFloat,
              "monotone_regression: coefficients are float32 or float64");
  return monotone_typed<float>(input, target, coefficients, boundaries, contamination_lo,
                               contamination_hi, limit, reduction, want_gradient, want_table);
}

// The value, the input gradient and the usable flag, for callers with their own autograd.
std::tuple<at::Tensor, at::Tensor, at::Tensor> monotone_regression(
    const at::Tensor& input, const at::Tensor& target, const at::Tensor& coefficients,
    const at::Tensor& boundaries, double contamination_lo, double contamination_hi, double limit,
    int64_t reduction, bool want_gradient) {
  const Outcome out = compute(input, target, coefficients, boundaries, contamination_lo,
                              contamination_hi, limit, reduction, want_gradient);
  return {out.value, out.gradient, at::scalar_tensor(out.usable, input.options().dtype(at::kBool))};
}

// The primitive op through the dispatcher (so that dispatch modes and the profiler see it).
std::tuple<at::Tensor, at::Tensor, at::Tensor> call_monotone_regression(
    const at::Tensor& input, const at::Tensor& target, const at::Tensor& coefficients,
    const at::Tensor& boundaries, double lo, double hi, double limit, int64_t reduction,
    bool want_gradient) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("learnedloss::monotone_regression", "")
          .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
              const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, double,
              double, double, int64_t, bool)>();
  return op.call(input, target, coefficients, boundaries, lo, hi, limit, reduction,
                 want_gradient);
}

// The loss with its own autograd node: the backward scales the gradient the forward computed,
// or, under create_graph, recomputes it from differentiable operations (the scale and the
// blended coefficients held fixed, as the general path holds them), so that second derivatives
// are right.
class MonotoneLoss : public torch::autograd::Function<MonotoneLoss> {
 public:
  static torch::autograd::variable_list forward(
      torch::autograd::AutogradContext* ctx, const at::Tensor& input, const at::Tensor& target,
      const at::Tensor& coefficients, const at::Tensor& boundaries, double contamination_lo,
      double contamination_hi, double limit, int64_t reduction) {
    at::AutoDispatchBelowADInplaceOrView guard;
    const bool want = input.requires_grad();
    auto [value, gradient, usable] =
        call_monotone_regression(input, target, coefficients, boundaries, contamination_lo,
                                 contamination_hi, limit, reduction, want);
    ctx->mark_non_differentiable({usable});
    if (want) {
      // the gradient is held outside the saved variables, so that the first backward can
      // hand it on without a copy (it becomes input.grad); a second backward through a
      // retained graph recomputes it
      ctx->saved_data["gradient"] = gradient;
      // the constants are held as plain references: they may be inference tensors (tables
      // cached under torch.inference_mode, targets made there), which autograd refuses to save
      ctx->saved_data["target"] = target;
      ctx->saved_data["coefficients"] = coefficients;
      ctx->saved_data["boundaries"] = boundaries;
      ctx->save_for_backward({input});
      ctx->saved_data["lo"] = contamination_lo;
      ctx->saved_data["hi"] = contamination_hi;
      ctx->saved_data["limit"] = limit;
      ctx->saved_data["reduction"] = reduction;
    }
    return {value, usable};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    torch::autograd::variable_list out(8);
    if (saved.empty()) return out;
    const at::Tensor& grad = grads[0];
    if (!at::GradMode::is_enabled() && ctx->saved_data.find("gradient") != ctx->saved_data.end()) {
      at::Tensor gradient = ctx->saved_data["gradient"].toTensor();
      ctx->saved_data.erase("gradient");
      if (grad.dim() != 0 || grad.item<double>() != 1.0) gradient.mul_(grad);
      out[0] = std::move(gradient);
      return out;
    }
    // create_graph or a second backward: the call's scale and blended coefficients again
    // (held fixed), then the gradient from differentiable operations of the input
    const at::Tensor& input = saved[0];
    const at::Tensor target = ctx->saved_data["target"].toTensor();
    const at::Tensor boundaries = ctx->saved_data["boundaries"].toTensor();
    const Outcome fixed = compute(
        input.detach(), target, ctx->saved_data["coefficients"].toTensor(), boundaries,
        ctx->saved_data["lo"].toDouble(),
        ctx->saved_data["hi"].toDouble(), ctx->saved_data["limit"].toDouble(),
        ctx->saved_data["reduction"].toInt(), false, /*want_table=*/true);
    const at::Tensor& table = fixed.table;
    const at::Tensor residual =
        input.to(table.scalar_type()) - target.to(table.scalar_type());
    // z and its interval as the general path takes them (MonotoneNetwork.shape_at): a
    // division, then the floor in knot spacings, so that an element exactly at a knot (the
    // median one sits at 1) gets the same one-sided second derivative
    const at::Tensor z = residual.abs() / fixed.scale;
    const double spacing = boundaries.to(at::kDouble).reshape(-1)[0].item<double>();
    const at::Tensor interval =
        (z.detach() / spacing).floor().clamp(0, table.size(0) - 1).to(at::kLong).reshape(-1);
    const at::Tensor b = table.select(1, 1).index_select(0, interval).view(z.sizes());
    const at::Tensor c = table.select(1, 2).index_select(0, interval).view(z.sizes());
    const at::Tensor gradient = (b + 2.0 * c * z) * residual.sign() * fixed.factor;
    out[0] = gradient.to(input.scalar_type()) * grad;
    return out;
  }
};

// Below autograd (inference mode, or no input needing a gradient there): the value alone.
std::tuple<at::Tensor, at::Tensor> monotone_regression_value(
    const at::Tensor& input, const at::Tensor& target, const at::Tensor& coefficients,
    const at::Tensor& boundaries, double contamination_lo, double contamination_hi, double limit,
    int64_t reduction) {
  const Outcome out = compute(input, target, coefficients, boundaries, contamination_lo,
                              contamination_hi, limit, reduction, false);
  return {out.value, at::scalar_tensor(out.usable, input.options().dtype(at::kBool))};
}

std::tuple<at::Tensor, at::Tensor> monotone_regression_loss(
    const at::Tensor& input, const at::Tensor& target, const at::Tensor& coefficients,
    const at::Tensor& boundaries, double contamination_lo, double contamination_hi, double limit,
    int64_t reduction) {
  auto out = MonotoneLoss::apply(input, target, coefficients, boundaries, contamination_lo,
                                 contamination_hi, limit, reduction);
  return {out[0], out[1]};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(learnedloss, m) {
  m.def(
      "monotone_regression(Tensor input, Tensor target, Tensor coefficients, Tensor boundaries, "
      "float contamination_lo, float contamination_hi, float limit, int reduction, "
      "bool want_gradient) -> (Tensor value, Tensor gradient, Tensor usable)");
  m.def(
      "monotone_regression_loss(Tensor input, Tensor target, Tensor coefficients, "
      "Tensor boundaries, float contamination_lo, float contamination_hi, float limit, "
      "int reduction) -> (Tensor value, Tensor usable)");
}

TORCH_LIBRARY_IMPL(learnedloss, CPU, m) {
  m.impl("monotone_regression", &monotone_regression);
  m.impl("monotone_regression_loss", &monotone_regression_value);
}

TORCH_LIBRARY_IMPL(learnedloss, Autograd, m) {
  m.impl("monotone_regression_loss", &monotone_regression_loss);
}

}  // namespace learnedloss
