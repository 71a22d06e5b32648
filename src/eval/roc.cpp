// ROC curves and AUC against a ground-truth circuit (include/edgewise/roc.h). Torch-free.
#include "edgewise/roc.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <numeric>
#include <sstream>

#include "edgewise/error.h"

namespace edgewise {

RocCurve roc_curve(const std::vector<double>& importance, const std::vector<uint8_t>& truth) {
  if (importance.size() != truth.size())
    fail("roc", std::to_string(importance.size()) + " scores but " + std::to_string(truth.size()) + " truth flags");
  for (double v : importance)
    if (!std::isfinite(v)) fail("roc", "a score is not finite");
  RocCurve c;
  for (uint8_t t : truth) (t ? c.positives : c.negatives)++;
  std::vector<size_t> order(importance.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return importance[a] > importance[b]; });
  const double P = static_cast<double>(c.positives), N = static_cast<double>(c.negatives);
  auto rate = [](double k, double n) { return n > 0 ? k / n : std::numeric_limits<double>::quiet_NaN(); };
  c.thresholds.push_back(std::numeric_limits<double>::infinity());
  c.fpr.push_back(rate(0, N));
  c.tpr.push_back(rate(0, P));
  double tp = 0, fp = 0;
  for (size_t i = 0; i < order.size();) {
    const double v = importance[order[i]];
    for (; i < order.size() && importance[order[i]] == v; ++i) (truth[order[i]] ? tp : fp) += 1;
    c.thresholds.push_back(v);
    c.fpr.push_back(rate(fp, N));
    c.tpr.push_back(rate(tp, P));
  }
  if (c.positives == 0 || c.negatives == 0) {
    c.auc = std::numeric_limits<double>::quiet_NaN();
  } else {
    c.auc = 0;
    for (size_t k = 1; k < c.fpr.size(); ++k) c.auc += (c.fpr[k] - c.fpr[k - 1]) * (c.tpr[k] + c.tpr[k - 1]) / 2;
  }
  return c;
}

namespace {

void check_same_graph(const Circuit& scored, const Circuit& truth) {
  if (!(scored.shape == truth.shape))
    fail("roc", "the circuit and the truth are of different graphs (" + std::to_string(scored.shape.n_layers) +
                    " layers x " + std::to_string(scored.shape.n_heads) + " heads against " +
                    std::to_string(truth.shape.n_layers) + " x " + std::to_string(truth.shape.n_heads) + ")");
  if (scored.split_qkv != truth.split_qkv)
    fail("roc", std::string("the circuit ") + (scored.split_qkv ? "has" : "has no") + " q/k/v readers and the truth " +
                    (truth.split_qkv ? "has" : "has none") + ": use circuits of the same graph");
}

double importance_of(float s, const RocOptions& opt) { return opt.absolute ? std::fabs(s) : s; }

}  // namespace

RocItems roc_edge_items(const Circuit& scored, const Circuit& truth, const RocOptions& opt) {
  check_same_graph(scored, truth);
  const Graph g = scored.graph();
  const int64_t R = g.n_readers();
  RocItems it;
  std::map<std::string, size_t> merged;  // merged name -> item
  for (int64_t s = 0; s < g.n_sources(); ++s)
    for (int64_t r = 0; r < R; ++r) {
      if (!g.is_edge(s, r)) continue;
      const size_t e = static_cast<size_t>(s * R + r);
      std::string name = g.edge_name(s, r);
      const Graph::ReaderKind k = g.reader(r).kind;
      const bool qkv = k == Graph::ReaderKind::Q || k == Graph::ReaderKind::K || k == Graph::ReaderKind::V;
      const double imp = importance_of(scored.scores[e], opt);
      if (opt.merge_qkv && qkv) {
        name = name.substr(0, name.rfind('<'));
        auto [m, fresh] = merged.try_emplace(name, it.names.size());
        if (!fresh) {
          it.importance[m->second] = std::max(it.importance[m->second], imp);
          it.truth[m->second] |= truth.in_graph[e];
          it.chosen[m->second] |= scored.in_graph[e];
          continue;
        }
      }
      it.names.push_back(name);
      it.importance.push_back(imp);
      it.truth.push_back(truth.in_graph[e]);
      it.chosen.push_back(scored.in_graph[e]);
    }
  return it;
}

RocItems roc_node_items(const Circuit& scored, const Circuit& truth, const RocOptions& opt) {
  check_same_graph(scored, truth);
  const Graph g = scored.graph();
  const int64_t R = g.n_readers();
  RocItems it;
  for (int64_t s = 0; s < g.n_sources(); ++s) {
    double imp = -std::numeric_limits<double>::infinity();
    uint8_t t = 0, c = 0;
    for (int64_t r = 0; r < R; ++r) {
      if (!g.is_edge(s, r)) continue;
      const size_t e = static_cast<size_t>(s * R + r);
      imp = std::max(imp, importance_of(scored.scores[e], opt));
      t |= truth.in_graph[e];
      c |= scored.in_graph[e];
    }
    if (!std::isfinite(imp)) continue;  // a source with no out-edge
    it.names.push_back(g.source_name(s));
    it.importance.push_back(imp);
    it.truth.push_back(t);
    it.chosen.push_back(c);
  }
  return it;
}

RocLevel roc_level(const RocItems& items) {
  RocLevel l;
  l.curve = roc_curve(items.importance, items.truth);
  double tp = 0, fp = 0;
  for (size_t i = 0; i < items.truth.size(); ++i)
    if (items.chosen[i]) (items.truth[i] ? tp : fp) += 1, ++l.chosen;
  l.tpr_chosen = l.curve.positives ? tp / l.curve.positives : std::numeric_limits<double>::quiet_NaN();
  l.fpr_chosen = l.curve.negatives ? fp / l.curve.negatives : std::numeric_limits<double>::quiet_NaN();
  return l;
}

std::string roc_csv(const std::vector<std::pair<std::string, RocLevel>>& levels) {
  std::ostringstream s;
  s.precision(12);
  s << "level,threshold,fpr,tpr\n";
  for (const auto& [name, l] : levels)
    for (size_t i = 0; i < l.curve.fpr.size(); ++i)
      s << name << "," << l.curve.thresholds[i] << "," << l.curve.fpr[i] << "," << l.curve.tpr[i] << "\n";
  for (const auto& [name, l] : levels)
    s << "# " << name << " AUC " << l.curve.auc << " positives " << l.curve.positives << " negatives "
      << l.curve.negatives << " chosen " << l.chosen << " TPR " << l.tpr_chosen << " FPR " << l.fpr_chosen << "\n";
  return s.str();
}

std::string roc_svg(const std::vector<std::pair<std::string, RocLevel>>& levels, const std::string& title) {
  const double W = 420, H = 420, L = 60, Rm = 20, T = 40, Bm = 50;
  auto px = [&](double v) { return L + v * (W - L - Rm); };
  auto py = [&](double v) { return H - Bm - v * (H - T - Bm); };
  static const char* colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
    << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n"
    << "<text x='" << L << "' y='24' font-size='14'>" << title << "</text>\n"
    << "<rect x='" << px(0) << "' y='" << py(1) << "' width='" << px(1) - px(0) << "' height='" << py(0) - py(1)
    << "' fill='none' stroke='#888'/>\n<line x1='" << px(0) << "' y1='" << py(0) << "' x2='" << px(1) << "' y2='"
    << py(1) << "' stroke='#bbb' stroke-dasharray='4'/>\n";
  for (size_t k = 0; k < levels.size(); ++k) {
    const auto& [name, l] = levels[k];
    const char* col = colours[k % 4];
    s << "<polyline fill='none' stroke='" << col << "' stroke-width='2' points='";
    for (size_t i = 0; i < l.curve.fpr.size(); ++i)
      if (std::isfinite(l.curve.fpr[i]) && std::isfinite(l.curve.tpr[i]))
        s << px(l.curve.fpr[i]) << "," << py(l.curve.tpr[i]) << " ";
    s << "'/>\n";
    if (std::isfinite(l.fpr_chosen) && std::isfinite(l.tpr_chosen))
      s << "<circle cx='" << px(l.fpr_chosen) << "' cy='" << py(l.tpr_chosen) << "' r='4' fill='" << col << "'/>\n";
    char lab[160];
    std::snprintf(lab, sizeof lab, "%s: AUC %.4f (dot: the circuit, TPR %.3f FPR %.3f)", name.c_str(), l.curve.auc,
                  l.tpr_chosen, l.fpr_chosen);
    s << "<text x='" << px(0.04) << "' y='" << py(0.12) + 16 * k << "' fill='" << col << "'>" << lab << "</text>\n";
  }
  s << "<text x='" << (L + W - Rm) / 2 << "' y='" << H - 14
    << "' text-anchor='middle'>false positive rate</text>\n<text x='14' y='" << (T + H - Bm) / 2
    << "' transform='rotate(-90 14 " << (T + H - Bm) / 2 << ")' text-anchor='middle'>true positive rate</text>\n"
    << "<text x='" << px(0) << "' y='" << py(0) + 16 << "' text-anchor='middle'>0</text><text x='" << px(1) << "' y='"
    << py(0) + 16 << "' text-anchor='middle'>1</text>\n</svg>\n";
  return s.str();
}

}  // namespace edgewise
