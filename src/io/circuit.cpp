// Circuit files (EAP-IG / MIB JSON + an "edgewise" metadata object), pruning, and drawing with
// Graphviz. See include/edgewise/circuit.h. Not here: choosing which edges are in (discover/).
#include "edgewise/circuit.h"

#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "edgewise/error.h"

namespace fs = std::filesystem;

namespace edgewise {

Circuit Circuit::empty(GraphShape shape, bool split_qkv, int64_t d_model) {
  Circuit c;
  c.shape = shape;
  c.split_qkv = split_qkv;
  c.d_model = d_model;
  Graph g(shape, split_qkv);
  c.scores.assign(static_cast<size_t>(g.n_sources() * g.n_readers()), 0.0f);
  c.in_graph.assign(c.scores.size(), 0);
  return c;
}

int64_t Circuit::n_edges_in() const {
  int64_t n = 0;
  for (uint8_t v : in_graph) n += v;
  return n;
}

std::vector<uint8_t> Circuit::nodes_in_graph() const {
  Graph g = graph();
  std::vector<uint8_t> nodes(g.n_sources(), 0);
  for (int64_t i = 0; i < g.n_sources(); ++i)
    for (int64_t j = 0; j < g.n_readers() && !nodes[i]; ++j) nodes[i] = in_graph[i * g.n_readers() + j];
  return nodes;
}

namespace {

// The source nodes that read through reader j: one head, the R heads sharing a key/value head,
// an MLP, or none (logits).
std::vector<int64_t> reader_owners(const Graph& g, int64_t j) {
  const Graph::Reader& r = g.reader(j);
  if (r.kind == Graph::ReaderKind::K || r.kind == Graph::ReaderKind::V) {
    const int64_t R = g.shape().n_heads / g.shape().n_kv_heads;
    std::vector<int64_t> out;
    for (int64_t h = r.head * R; h < (r.head + 1) * R; ++h) out.push_back(g.head_source(r.layer, h));
    return out;
  }
  switch (r.kind) {
    case Graph::ReaderKind::Q:
    case Graph::ReaderKind::Head: return {g.head_source(r.layer, r.head)};
    case Graph::ReaderKind::Mlp: return {g.mlp_source(r.layer)};
    default: return {};  // logits
  }
}

}  // namespace

void Circuit::prune() {
  Graph g = graph();
  const int64_t S = g.n_sources(), R = g.n_readers();
  bool changed = true;
  while (changed) {
    changed = false;
    // A source is alive when it has an out-edge and (unless it is input) an in-edge into one
    // of its readers.
    std::vector<uint8_t> has_out(S, 0), has_in(S, 0);
    has_in[0] = 1;
    for (int64_t j = 0; j < R; ++j) {
      bool any = false;
      for (int64_t i = 0; i < S; ++i) {
        if (in_graph[i * R + j]) {
          has_out[i] = 1;
          any = true;
        }
      }
      if (any)
        for (int64_t o : reader_owners(g, j)) has_in[o] = 1;
    }
    for (int64_t j = 0; j < R; ++j) {
      // An edge needs a live source, and a reader whose owner is alive (logits always are).
      auto owners = reader_owners(g, j);
      bool reader_alive = owners.empty();
      for (int64_t o : owners) reader_alive = reader_alive || (has_out[o] && has_in[o]);
      for (int64_t i = 0; i < S; ++i) {
        uint8_t& e = in_graph[i * R + j];
        if (e && (!(has_out[i] && has_in[i]) || !reader_alive)) {
          e = 0;
          changed = true;
        }
      }
    }
  }
}

void write_file_atomic(const std::string& path, const std::string& content) {
  fs::path p(path);
  fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  if (!fs::is_directory(dir)) fail(path, "cannot write: directory " + dir.string() + " does not exist");
  std::string tmpl = (dir / ("." + p.filename().string() + ".tmp.XXXXXX")).string();
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  int fd = mkstemp(name.data());
  if (fd < 0) fail(path, "cannot create a temporary file in " + dir.string());
  // mkstemp creates the file 0600; give the result the permissions a plain create would
  // (0666 less the umask), so outputs can be shared.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd, 0666 & ~mask);
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n <= 0) {
      ::close(fd);
      ::unlink(name.data());
      fail(path, "write failed (disk full?)");
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(name.data());
    fail(path, "write failed while flushing");
  }
  std::error_code ec;
  fs::rename(name.data(), p, ec);
  if (ec) {
    ::unlink(name.data());
    fail(path, "cannot rename the temporary file into place (" + ec.message() + ")");
  }
}

void circuit_write(const Circuit& c, const std::string& path) {
  // Streamed by hand: nlohmann's insertion-ordered objects are linear-time per key, which is
  // quadratic over tens of thousands of edges. Values go through nlohmann for exact number and
  // string formatting (shortest round-trip repr of the float's double value).
  Graph g = c.graph();
  const int64_t S = g.n_sources(), R = g.n_readers();
  auto q = [](const std::string& s) { return nlohmann::json(s).dump(); };
  std::ostringstream o;
  o << "{\n \"cfg\": " << nlohmann::json{{"n_layers", c.shape.n_layers}, {"n_heads", c.shape.n_heads},
                                         {"n_kv_heads", c.shape.n_kv_heads}, {"parallel_attn_mlp", c.shape.parallel},
                                         {"d_model", c.d_model}}.dump();
  auto nodes = c.nodes_in_graph();
  o << ",\n \"nodes\": {";
  for (int64_t i = 0; i < S; ++i)
    o << (i ? ", " : "") << q(g.source_name(i)) << ": {\"in_graph\": " << (nodes[i] ? "true" : "false") << "}";
  o << ", \"logits\": {\"in_graph\": true}},\n \"edges\": {";
  bool first = true;
  for (int64_t d = 0; d < R; ++d)
    for (int64_t s = 0; s < g.reader_fan_in(d); ++s) {
      o << (first ? "\n  " : ",\n  ") << q(g.edge_name(s, d)) << ": {\"score\": "
        << nlohmann::json(static_cast<double>(c.scores[s * R + d])).dump()
        << ", \"in_graph\": " << (c.in_graph[s * R + d] ? "true" : "false") << "}";
      first = false;
    }
  nlohmann::json meta = c.meta.is_object() ? c.meta : nlohmann::json::object();
  meta["version"] = EDGEWISE_VERSION;
  meta["split_qkv"] = c.split_qkv;
  meta["n_edges_in_circuit"] = c.n_edges_in();
  o << "\n },\n \"edgewise\": " << meta.dump(1) << "\n}\n";
  write_file_atomic(path, o.str());
}

Circuit circuit_read(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, "cannot open circuit file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("not valid JSON (") + e.what() + ")");
  }
  for (const char* k : {"cfg", "nodes", "edges"})
    if (!j.contains(k) || !j[k].is_object())
      fail(path, std::string("not a circuit file: missing object \"") + k +
                     "\" (expected EAP-IG / edgewise JSON with cfg, nodes, edges)");
  const auto& cfg = j["cfg"];
  auto get_int = [&](const char* k, std::optional<int64_t> dflt) -> int64_t {
    if (cfg.contains(k) && cfg[k].is_number_integer()) return cfg[k].get<int64_t>();
    if (dflt) return *dflt;
    fail(path, std::string("cfg.") + k + " is missing or not an integer");
  };
  if (cfg.contains("parallel_attn_mlp") && !cfg["parallel_attn_mlp"].is_boolean())
    fail(path, "cfg.parallel_attn_mlp must be true or false, found " + cfg["parallel_attn_mlp"].dump());
  Circuit c;
  c.shape.parallel = cfg.value("parallel_attn_mlp", false);
  c.shape.n_layers = get_int("n_layers", std::nullopt);
  c.shape.n_heads = get_int("n_heads", std::nullopt);
  c.shape.n_kv_heads = get_int("n_kv_heads", c.shape.n_heads);
  c.d_model = get_int("d_model", 0);
  if (j.contains("edgewise") && j["edgewise"].is_object()) {
    c.meta = j["edgewise"];
    if (c.meta.contains("split_qkv") && !c.meta["split_qkv"].is_boolean())
      fail(path, "edgewise.split_qkv must be true or false, found " + c.meta["split_qkv"].dump());
    c.split_qkv = c.meta.value("split_qkv", true);
    for (const char* k : {"version", "split_qkv", "n_edges_in_circuit"}) c.meta.erase(k);
  }
  // The scores are a dense [sources, readers] table: a corrupt cfg must not size it at will.
  // 2^27 entries (512 MiB of float32) is 4x the graph of a 70B-parameter Llama (80 layers,
  // 64 heads, 8 key/value heads: 5201 x 6481).
  constexpr double kMaxEntries = double(int64_t{1} << 27);
  const double L = double(c.shape.n_layers), H = double(c.shape.n_heads), G = double(c.shape.n_kv_heads);
  if (L > 0 && H > 0 && G > 0) {
    const double sources = 1 + L * (H + 1), readers = 1 + L * (H + (c.split_qkv ? 2 * G : 0) + 1);
    auto num = [](double x) {
      char b[64];
      std::snprintf(b, sizeof b, "%.0f", x);
      return std::string(b);
    };
    if (sources * readers > kMaxEntries)
      fail(path, "cfg " + cfg.dump() + " describes a graph of " + num(sources) + " sources x " + num(readers) +
                     " readers, more score entries than the " + num(kMaxEntries) +
                     " edgewise handles: the file is corrupt");
  }
  Circuit e;
  try {
    e = Circuit::empty(c.shape, c.split_qkv, c.d_model);
  } catch (const Error& err) {
    fail(path, err.what());
  }
  c.scores = std::move(e.scores);
  c.in_graph = std::move(e.in_graph);
  Graph g = c.graph();
  const int64_t R = g.n_readers();
  for (auto& [name, v] : j["edges"].items()) {
    auto idx = g.find_edge(name);
    if (!idx) fail(path, "edge '" + name + "' is not an edge of a graph with cfg " + cfg.dump());
    if (!v.is_object() || !v.contains("in_graph") || !v["in_graph"].is_boolean())
      fail(path, "edge '" + name + "': expected {\"score\": number, \"in_graph\": bool}");
    const size_t k = static_cast<size_t>(idx->first * R + idx->second);
    if (v.contains("score") && !v["score"].is_null()) {
      if (!v["score"].is_number()) fail(path, "edge '" + name + "': score is not a number");
      c.scores[k] = static_cast<float>(v["score"].get<double>());
    }
    c.in_graph[k] = v["in_graph"].get<bool>();
  }
  return c;
}

std::string circuit_dot(const Circuit& c) {
  Graph g = c.graph();
  const int64_t S = g.n_sources(), R = g.n_readers();
  auto nodes = c.nodes_in_graph();
  float max_abs = 0;
  for (int64_t k = 0; k < S * R; ++k)
    if (c.in_graph[k]) max_abs = std::max(max_abs, std::fabs(c.scores[k]));
  std::ostringstream o;
  o << "digraph circuit {\n  rankdir=TB; bgcolor=white; splines=true; nodesep=0.15; ranksep=0.5;\n"
    << "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=11];\n"
    << "  input [fillcolor=\"#d9d9d9\"];\n  logits [fillcolor=\"#d9d9d9\"];\n";
  // One rank per layer of heads and one per MLP, so the picture reads top to bottom by depth.
  for (int64_t l = 0; l < c.shape.n_layers; ++l) {
    std::string heads;
    for (int64_t h = 0; h < c.shape.n_heads; ++h) {
      int64_t s = g.head_source(l, h);
      if (nodes[s]) heads += " \"" + g.source_name(s) + "\" [fillcolor=\"#c6dbef\"];";
    }
    if (!heads.empty()) o << "  { rank=same;" << heads << " }\n";
    if (nodes[g.mlp_source(l)]) o << "  \"m" << l << "\" [fillcolor=\"#fdd0a2\"];\n";
  }
  for (int64_t j = 0; j < R; ++j) {
    const Graph::Reader& r = g.reader(j);
    for (int64_t i = 0; i < g.reader_fan_in(j); ++i) {
      const int64_t k = i * R + j;
      if (!c.in_graph[k]) continue;
      const float s = c.scores[k];
      const double w = max_abs > 0 ? 0.6 + 4.4 * std::fabs(s) / max_abs : 1.0;
      const char* style = r.kind == Graph::ReaderKind::K   ? "dashed"
                          : r.kind == Graph::ReaderKind::V ? "dotted"
                                                           : "solid";
      // A k/v reader of a grouped model feeds every head of its group: draw the edge into each
      // head of the group that is in the circuit.
      auto owners = reader_owners(g, j);
      std::vector<int64_t> shown;
      for (int64_t dst : owners)
        if (nodes[dst]) shown.push_back(dst);
      if (shown.empty() && !owners.empty()) shown.push_back(owners[0]);
      for (int64_t dst : shown)
        o << "  \"" << g.source_name(i) << "\" -> \"" << g.source_name(dst) << "\" [penwidth=" << w
          << ", color=\"" << (s >= 0 ? "#2166ac" : "#b2182b") << "\", style=" << style << "];\n";
      if (r.kind == Graph::ReaderKind::Logits)
        o << "  \"" << g.source_name(i) << "\" -> logits [penwidth=" << w << ", color=\""
          << (s >= 0 ? "#2166ac" : "#b2182b") << "\"];\n";
    }
  }
  o << "}\n";
  return o.str();
}

void circuit_draw_svg(const Circuit& c, const std::string& path) {
  const std::string dot = circuit_dot(c);
  fs::path p(path);
  fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  std::string dot_file = (dir / ("." + p.filename().string() + ".dot")).string();
  write_file_atomic(dot_file, dot);
  std::string svg_tmp = (dir / ("." + p.filename().string() + ".svg.tmp")).string();
  std::string cmd = "dot -Tsvg -o '" + svg_tmp + "' '" + dot_file + "' 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string out;
  if (pipe) {
    char buf[512];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  }
  int st = pipe ? pclose(pipe) : -1;
  fs::remove(dot_file);
  if (st != 0 || !fs::exists(svg_tmp)) {
    fs::remove(svg_tmp);
    fail(path, "Graphviz `dot` failed" + (out.empty() ? std::string(" (is graphviz installed?)") : ": " + out));
  }
  std::error_code ec;
  fs::rename(svg_tmp, p, ec);
  if (ec) fail(path, "cannot move the SVG into place (" + ec.message() + ")");
}

}  // namespace edgewise
