// Standalone SVG curves (include/edgewise/plot.h).
#include "edgewise/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace edgewise {

std::string curve_svg(const std::vector<double>& x, const std::vector<double>& y, const std::string& title,
                      const std::string& x_label) {
  const double W = 560, H = 360, L = 60, R = 20, T = 40, Bm = 50;
  double ymin = 0, ymax = 1;
  for (double v : y)
    if (std::isfinite(v)) ymin = std::min(ymin, v), ymax = std::max(ymax, v);
  const double lx0 = x.empty() ? 0 : std::log10(x.front()), lx1 = x.empty() ? 0 : std::log10(x.back());
  auto px = [&](double v) { return L + (std::log10(v) - lx0) / std::max(1e-9, lx1 - lx0) * (W - L - R); };
  auto py = [&](double v) { return H - Bm - (v - ymin) / std::max(1e-9, ymax - ymin) * (H - T - Bm); };
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H << "' font-family='sans-serif' font-size='12'>\n"
    << "<rect width='100%' height='100%' fill='white'/>\n<text x='" << L << "' y='24' font-size='14'>" << title << "</text>\n"
    << "<line x1='" << L << "' y1='" << py(1) << "' x2='" << W - R << "' y2='" << py(1) << "' stroke='#bbb' stroke-dasharray='4'/>\n"
    << "<line x1='" << L << "' y1='" << py(0) << "' x2='" << W - R << "' y2='" << py(0) << "' stroke='#bbb'/>\n"
    << "<text x='" << L - 8 << "' y='" << py(1) + 4 << "' text-anchor='end'>1</text><text x='" << L - 8 << "' y='"
    << py(0) + 4 << "' text-anchor='end'>0</text>\n<polyline fill='none' stroke='#1f77b4' stroke-width='2' points='";
  for (size_t i = 0; i < x.size(); ++i)
    if (std::isfinite(y[i])) s << px(x[i]) << "," << py(y[i]) << " ";
  s << "'/>\n";
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(y[i])) continue;
    s << "<circle cx='" << px(x[i]) << "' cy='" << py(y[i]) << "' r='3' fill='#1f77b4'/>\n";
    char lab[32];
    std::snprintf(lab, sizeof lab, "%g%%", 100 * x[i]);
    s << "<text x='" << px(x[i]) << "' y='" << H - Bm + 16 << "' text-anchor='middle' font-size='10'>" << lab << "</text>\n";
  }
  s << "<text x='" << (L + W - R) / 2 << "' y='" << H - 12 << "' text-anchor='middle'>" << x_label << "</text>\n"
    << "<text x='14' y='" << (T + H - Bm) / 2 << "' transform='rotate(-90 14 " << (T + H - Bm) / 2
    << ")' text-anchor='middle'>normalised faithfulness</text>\n</svg>\n";
  return s.str();
}

}  // namespace edgewise
