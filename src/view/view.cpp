// The circuit viewer's page (include/edgewise/view.h): the data one or more circuit files hold,
// as JSON, inserted into the page src/view/viewer.html (embedded at build time); the
// circuit-tracer graph export; the curve CSV reader. The drawing and interaction are the page's
// script. Torch-free.
#include "edgewise/view.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "edgewise/error.h"
#include "viewer_page.h"

namespace edgewise {

using nlohmann::json;

namespace {

// A float score as the shortest decimal of 7 significant digits (what float32 holds): the page's
// JSON stays small (70,651 edges: ~1 MB of scores) and reads back to the same float.
double short_float(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.7g", static_cast<double>(v));
  return std::strtod(buf, nullptr);
}

const char* source_kind(Graph::SourceKind k) {
  switch (k) {
    case Graph::SourceKind::Input: return "input";
    case Graph::SourceKind::Head: return "head";
    case Graph::SourceKind::Mlp: return "mlp";
  }
  return "";
}

const char* reader_kind(Graph::ReaderKind k) {
  switch (k) {
    case Graph::ReaderKind::Q: return "q";
    case Graph::ReaderKind::K: return "k";
    case Graph::ReaderKind::V: return "v";
    case Graph::ReaderKind::Head: return "head";
    case Graph::ReaderKind::Mlp: return "mlp";
    case Graph::ReaderKind::Logits: return "logits";
  }
  return "";
}

// The nodes a reader feeds (Graph::reader_nodes), the logits as n_sources.
std::vector<int64_t> fed_nodes(const Graph& g, int64_t j) {
  std::vector<int64_t> n = g.reader_nodes(j);
  if (n.empty()) n.push_back(g.n_sources());
  return n;
}

}  // namespace

ViewCurve read_view_curve(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, "cannot read the curve file");
  ViewCurve c;
  std::string line;
  std::vector<std::string> header;
  int64_t xcol = -1, ycol = -1;
  for (int64_t lineno = 1; std::getline(in, line); ++lineno) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) cells.push_back(cell);
    const std::string where = path + ":" + std::to_string(lineno);
    if (header.empty()) {
      header = cells;
      for (const char* name : {"edges_after_prune", "edges", "fraction"})
        for (size_t i = 0; i < header.size() && xcol < 0; ++i)
          if (header[i] == name) xcol = static_cast<int64_t>(i), c.x_name = name == std::string("fraction") ? "fraction of edges" : "edges";
      for (size_t i = 0; i < header.size(); ++i)
        if (header[i] == "faithfulness") ycol = static_cast<int64_t>(i);
      if (xcol < 0 || ycol < 0)
        fail(where, "expected a curve CSV with the columns edges_after_prune (or edges, or fraction) and faithfulness "
                    "(what `discover --curve` writes)");
      continue;
    }
    if (cells.size() != header.size())
      fail(where, "expected " + std::to_string(header.size()) + " cells, found " + std::to_string(cells.size()));
    auto number = [&](int64_t i) {
      char* end = nullptr;
      const double v = std::strtod(cells[i].c_str(), &end);
      if (cells[i].empty() || *end != '\0') fail(where, "'" + cells[i] + "' is not a number (column " + header[i] + ")");
      return v;
    };
    c.x.push_back(number(xcol));
    c.y.push_back(number(ycol));
  }
  if (header.empty()) fail(path, "the curve file is empty");
  if (c.x.empty()) fail(path, "the curve file has a header but no points");
  return c;
}

json circuit_view_data(const std::vector<ViewInput>& circuits, const ViewOptions& opt) {
  if (circuits.empty()) fail("view", "no circuit given");
  const Circuit& first = circuits.front().circuit;
  for (const ViewInput& v : circuits)
    if (!(v.circuit.shape == first.shape) || v.circuit.split_qkv != first.split_qkv)
      fail(v.name, "its graph (" + std::to_string(v.circuit.shape.n_layers) + " layers, " +
                       std::to_string(v.circuit.shape.n_heads) + " heads, " + std::to_string(v.circuit.shape.n_kv_heads) +
                       " kv heads" + (v.circuit.split_qkv ? ", q/k/v readers" : ", head level") +
                       ") differs from " + circuits.front().name + "'s: circuits compared must share one graph");
  if (circuits.size() > 30) fail("view", "at most 30 circuits in one comparison");
  const Graph g = first.graph();
  json d;
  d["graph"] = {{"n_layers", first.shape.n_layers}, {"n_heads", first.shape.n_heads},
                {"n_kv_heads", first.shape.n_kv_heads}, {"split_qkv", first.split_qkv}, {"parallel", first.shape.parallel}};
  json src = json::array(), rdr = json::array();
  for (int64_t i = 0; i < g.n_sources(); ++i) {
    const Graph::Source& s = g.source(i);
    src.push_back({{"name", g.source_name(i)}, {"kind", source_kind(s.kind)}, {"layer", s.layer}, {"head", s.head}});
  }
  for (int64_t j = 0; j < g.n_readers(); ++j) {
    const Graph::Reader& r = g.reader(j);
    rdr.push_back({{"name", g.reader_name(j)}, {"kind", reader_kind(r.kind)}, {"layer", r.layer}, {"head", r.head}});
  }
  d["sources"] = std::move(src);
  d["readers"] = std::move(rdr);
  std::vector<int64_t> es, ed;
  for (int64_t j = 0; j < g.n_readers(); ++j)
    for (int64_t s = 0; s < g.reader_fan_in(j); ++s) es.push_back(s), ed.push_back(j);
  d["edges"] = {{"src", es}, {"dst", ed}};
  json cs = json::array();
  for (const ViewInput& v : circuits) {
    std::vector<double> score;
    std::vector<int> in;
    score.reserve(es.size());
    in.reserve(es.size());
    for (size_t e = 0; e < es.size(); ++e) {
      const size_t k = static_cast<size_t>(es[e] * g.n_readers() + ed[e]);
      score.push_back(short_float(v.circuit.scores[k]));
      in.push_back(v.circuit.in_graph[k] ? 1 : 0);
    }
    cs.push_back({{"name", v.name}, {"meta", v.circuit.meta}, {"score", score}, {"in", in}});
  }
  d["circuits"] = std::move(cs);
  const std::optional<ViewCurve>& curve = opt.curve;
  d["curve"] = curve ? json{{"x", curve->x}, {"y", curve->y}, {"xname", curve->x_name}, {"yname", curve->y_name}}
                     : json(nullptr);
  if (opt.show < -1) fail("view", "the number of edges shown must be >= 0 (or -1 for the circuits' own)");
  d["show"] = opt.show;
  return d;
}

std::string circuit_view_html(const std::vector<ViewInput>& circuits, const ViewOptions& opt) {
  std::string data = circuit_view_data(circuits, opt).dump();
  // Inside <script>, "</" could end the element early: JSON may write it as "<\/".
  std::string safe;
  safe.reserve(data.size() + 16);
  for (size_t i = 0; i < data.size(); ++i) {
    if (data[i] == '<' && i + 1 < data.size() && data[i + 1] == '/') {
      safe += "<\\/";
      ++i;
    } else {
      safe += data[i];
    }
  }
  std::string page = view_detail::kViewerPage;
  const std::string mark = "__EW_DATA__";
  const size_t at = page.find(mark);
  if (at == std::string::npos) fail("view", "internal: the page has no data mark");
  page.replace(at, mark.size(), safe);
  return page;
}

json circuit_tracer_graph(const Circuit& c, const std::string& slug) {
  const Graph g = c.graph();
  const int64_t L = c.shape.n_layers, H = c.shape.n_heads, S = g.n_sources();
  // Node ids in circuit-tracer's "{layer}_{feature}_{ctx}" form: the embedding "E_0_0", head h of
  // layer l "l_h_0", MLP l "l_H_0" (feature H: after the heads), the logits "{L + 1}_0_0".
  auto node_id = [&](int64_t n) -> std::string {
    if (n == S) return std::to_string(L + 1) + "_0_0";
    const Graph::Source& s = g.source(n);
    if (s.kind == Graph::SourceKind::Input) return "E_0_0";
    return std::to_string(s.layer) + "_" + std::to_string(s.kind == Graph::SourceKind::Head ? s.head : H) + "_0";
  };
  std::vector<uint8_t> used(S + 1, 0);
  json links = json::array();
  for (int64_t j = 0; j < g.n_readers(); ++j)
    for (int64_t s = 0; s < g.reader_fan_in(j); ++s) {
      const size_t k = static_cast<size_t>(s * g.n_readers() + j);
      if (!c.in_graph[k]) continue;
      for (int64_t n : fed_nodes(g, j)) {
        used[s] = used[n] = 1;
        links.push_back({{"source", node_id(s)}, {"target", node_id(n)}, {"weight", short_float(c.scores[k])}});
      }
    }
  json nodes = json::array();
  for (int64_t n = 0; n <= S; ++n) {
    if (!used[n]) continue;
    const bool logits = n == S;
    const Graph::SourceKind kind = logits ? Graph::SourceKind::Input : g.source(n).kind;
    const std::string type = logits ? "logit" : kind == Graph::SourceKind::Input ? "embedding"
                                              : kind == Graph::SourceKind::Head ? "attention head" : "mlp";
    const int64_t layer = logits ? L + 1 : g.source(n).layer;
    nodes.push_back({{"node_id", node_id(n)},
                     {"feature", logits || kind == Graph::SourceKind::Input ? 0 : kind == Graph::SourceKind::Head ? g.source(n).head : H},
                     {"layer", !logits && kind == Graph::SourceKind::Input ? std::string("E") : std::to_string(layer)},
                     {"ctx_idx", 0}, {"feature_type", type}, {"token_prob", 0.0}, {"is_target_logit", logits},
                     {"run_idx", 0}, {"reverse_ctx_idx", 0}, {"jsNodeId", node_id(n)},
                     {"clerp", logits ? std::string("logits") : g.source_name(n)}, {"influence", nullptr},
                     {"activation", nullptr}});
  }
  const json& m = c.meta;
  auto str = [&](const char* key) { return m.contains(key) && m[key].is_string() ? m[key].get<std::string>() : std::string(); };
  return {{"metadata", {{"slug", slug}, {"scan", str("model").empty() ? std::string("edgewise") : str("model")},
                        {"transcoder_list", json::array()}, {"prompt_tokens", json::array()}, {"prompt", str("task")},
                        {"node_threshold", nullptr}, {"schema_version", 1}}},
          {"qParams", {{"pinnedIds", json::array()}, {"supernodes", json::array()}, {"linkType", "both"},
                       {"clickedId", ""}, {"sg_pos", ""}}},
          {"nodes", std::move(nodes)},
          {"links", std::move(links)}};
}

}  // namespace edgewise
