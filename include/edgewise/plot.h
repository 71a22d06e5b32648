// Small standalone SVG plots of curves (faithfulness over edge budgets, FLAP's sparsity sweep),
// so every command and the Python package draw the same figure. Torch-free.
#pragma once
#include <string>
#include <vector>

namespace edgewise {

/// A line plot of (x, y) points as a small standalone SVG: x on a log scale (x > 0), y the
/// normalised faithfulness (reference lines at 0 and 1); non-finite y are left out.
std::string curve_svg(const std::vector<double>& x, const std::vector<double>& y, const std::string& title,
                      const std::string& x_label = "edges kept (fraction of all, log scale)");

}  // namespace edgewise
