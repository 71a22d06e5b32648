// The hard-concrete sampler (src/discover/hard_concrete.cpp) against its analytic distribution,
// derived here from the definition rather than taken from the code: with c(t) = (t - l) / (r - l),
//   P(z <= t) = P(s <= c(t)) = P(u <= sigmoid(beta logit(c(t)) - log_alpha))   for t in [0, 1)
// so P(z = 0) = sigmoid(beta logit(c(0)) - la), P(z = 1) = 1 - sigmoid(beta logit(c(1)) - la), and
// E[z] = int_0^1 P(z > t) dt (trapezoids, 200,000 intervals: error ~1e-9).
//
// Tolerances: 2,000,000 samples per log_alpha; a frequency's standard error is at most
// sqrt(0.25 / 2e6) = 3.5e-4 and the mean's (z in [0, 1]) too: 2e-3 is over 5 standard errors.
// Gradient vs central differences in double with h = 1e-6: truncation ~1e-12, rounding ~1e-10.
#include <gtest/gtest.h>
#include <ATen/ATen.h>

#include <cmath>

#include "edgewise/error.h"
#include "edgewise/hard_concrete.h"

using namespace edgewise;

namespace {

const double l = -0.1, r = 1.1, beta = 2.0 / 3.0;
double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double logit(double p) { return std::log(p / (1.0 - p)); }
double cdf(double t, double la) { return sigmoid(beta * logit((t - l) / (r - l)) - la); }  // P(z <= t), t in [0, 1)

double analytic_mean(double la) {
  const int n = 200000;
  double sum = 0;
  for (int i = 0; i <= n; ++i) {
    const double t = static_cast<double>(i) / n;
    const double f = t < 1.0 ? 1.0 - cdf(t, la) : 1.0 - cdf(1.0 - 1e-12, la);
    sum += (i == 0 || i == n ? 0.5 : 1.0) * f;
  }
  return sum / n;
}

}  // namespace

TEST(HardConcrete, SamplerMatchesItsDistribution) {
  at::manual_seed(1234);
  const int64_t N = 2000000;
  for (double la : {-4.0, -1.0, 0.0, 0.5, 2.0, 5.0}) {
    at::Tensor log_alpha = at::full({N}, la, at::kDouble);
    at::Tensor z = hard_concrete::sample(log_alpha, at::rand({N}, at::kDouble));
    const double p0 = (z == 0).to(at::kDouble).mean().item<double>();
    const double p1 = (z == 1).to(at::kDouble).mean().item<double>();
    const double mean = z.mean().item<double>();
    const double a0 = cdf(0.0, la), a1 = 1.0 - cdf(1.0 - 1e-12, la), am = analytic_mean(la);
    std::printf("log_alpha %5.1f: P(z=0) %.4f (analytic %.4f), P(z=1) %.4f (%.4f), E[z] %.4f (%.4f)\n", la, p0, a0, p1,
                a1, mean, am);
    EXPECT_NEAR(p0, a0, 2e-3);
    EXPECT_NEAR(p1, a1, 2e-3);
    EXPECT_NEAR(mean, am, 2e-3);
    // The closed forms the code uses equal the derivation (the expected L0 is sum 1 - P0).
    EXPECT_NEAR(hard_concrete::prob_zero(at::full({1}, la, at::kDouble)).item<double>(), a0, 1e-12);
    EXPECT_NEAR(hard_concrete::prob_one(at::full({1}, la, at::kDouble)).item<double>(), a1, 1e-9);
    EXPECT_TRUE((z >= 0).all().item<bool>() && (z <= 1).all().item<bool>());
  }
}

TEST(HardConcrete, GradientMatchesFiniteDifferences) {
  at::manual_seed(7);
  at::Tensor la = at::linspace(-2, 2, 9, at::kDouble).requires_grad_(true);
  at::Tensor u = at::rand({9}, at::kDouble);
  at::Tensor f = (hard_concrete::sample(la, u) * at::arange(1, 10, at::kDouble)).sum() +
                 hard_concrete::prob_zero(la).sum();
  f.backward();
  const double h = 1e-6;
  for (int64_t i = 0; i < 9; ++i) {
    auto fval = [&](double d) {
      at::Tensor x = la.detach().clone();
      x[i] += d;
      return ((hard_concrete::sample(x, u) * at::arange(1, 10, at::kDouble)).sum() + hard_concrete::prob_zero(x).sum())
          .item<double>();
    };
    const double fd = (fval(h) - fval(-h)) / (2 * h);
    EXPECT_NEAR(la.grad()[i].item<double>(), fd, 1e-6 + 1e-6 * std::abs(fd)) << i;
  }
}

TEST(HardConcrete, DeterministicMaskAndDiscretisation) {
  // All log_alpha large (the reference's initialisation, 10): every mask ~1, none zeroed.
  at::Tensor big = at::full({100}, 10.0, at::kDouble);
  at::Tensor d = hard_concrete::deterministic(big);
  EXPECT_NEAR(d.min().item<double>(), sigmoid(10.0 / beta * 0.8), 1e-12);
  // Half very negative: P0 ~ 1 for them, so round(sum P0) = 50 entries (the smallest) are 0.
  at::Tensor mixed = at::cat({at::full({50}, -10.0, at::kDouble), at::full({50}, 3.0, at::kDouble)});
  d = hard_concrete::deterministic(mixed);
  EXPECT_EQ((d == 0).sum().item<int64_t>(), 50);
  EXPECT_TRUE((d.narrow(0, 0, 50) == 0).all().item<bool>());
  EXPECT_NEAR(d[60].item<double>(), sigmoid(3.0 / beta * 0.8), 1e-12);

  // Exactly `keep` of the valid entries, largest first, ties by index, invalid never chosen.
  at::Tensor mask = at::tensor({0.5, 0.9, 0.5, 0.1, 0.99, 0.5}, at::kDouble);
  at::Tensor valid = at::tensor({1, 1, 1, 1, 0, 1}, at::kLong).to(at::kBool);
  at::Tensor k3 = hard_concrete::keep_largest(mask, valid, 3);
  EXPECT_TRUE(k3.equal(at::tensor({1, 1, 1, 0, 0, 0}, at::kLong).to(at::kBool))) << k3;
  EXPECT_EQ(hard_concrete::keep_largest(mask, valid, 0).sum().item<int64_t>(), 0);
  EXPECT_EQ(hard_concrete::keep_largest(mask, valid, 5).sum().item<int64_t>(), 5);
  EXPECT_THROW(hard_concrete::keep_largest(mask, valid, 6), Error);
  EXPECT_THROW(hard_concrete::sample(big, at::rand({3})), Error);
}
