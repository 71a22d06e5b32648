// Graph indexing and names (see include/edgewise/graph.h). Pure integer bookkeeping.
#include "edgewise/graph.h"

#include <cstdlib>

#include "edgewise/error.h"

namespace edgewise {

Graph::Graph(GraphShape shape, bool split_qkv) : shape_(shape), split_(split_qkv) {
  const int64_t L = shape.n_layers, H = shape.n_heads, G = shape.n_kv_heads;
  if (L <= 0 || H <= 0 || G <= 0 || H % G != 0)
    fail("graph", "invalid shape: layers " + std::to_string(L) + ", heads " + std::to_string(H) +
                      ", key/value heads " + std::to_string(G) + " (heads must be a multiple of kv heads)");
  sources_.push_back({SourceKind::Input, -1, -1});
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t h = 0; h < H; ++h) sources_.push_back({SourceKind::Head, l, h});
    sources_.push_back({SourceKind::Mlp, l, -1});
  }
  for (int64_t l = 0; l < L; ++l) {
    if (split_) {
      for (int64_t h = 0; h < H; ++h) readers_.push_back({ReaderKind::Q, l, h});
      for (int64_t g = 0; g < G; ++g) readers_.push_back({ReaderKind::K, l, g});
      for (int64_t g = 0; g < G; ++g) readers_.push_back({ReaderKind::V, l, g});
    } else {
      for (int64_t h = 0; h < H; ++h) readers_.push_back({ReaderKind::Head, l, h});
    }
    readers_.push_back({ReaderKind::Mlp, l, -1});
  }
  readers_.push_back({ReaderKind::Logits, L, -1});
  for (const auto& r : readers_) {
    int64_t n = r.kind == ReaderKind::Logits ? n_sources()
                : r.kind == ReaderKind::Mlp  ? sources_before_mlp(r.layer)
                                             : sources_before_attn(r.layer);
    fan_in_.push_back(n);
    n_edges_ += n;
  }
}

int64_t Graph::source_begin(int64_t layer) const { return 1 + layer * (shape_.n_heads + 1); }
int64_t Graph::sources_before_attn(int64_t layer) const { return source_begin(layer); }
int64_t Graph::sources_before_mlp(int64_t layer) const {
  return source_begin(layer) + (shape_.parallel ? 0 : shape_.n_heads);
}
int64_t Graph::reader_fan_in(int64_t j) const { return fan_in_[j]; }

std::vector<int64_t> Graph::reader_nodes(int64_t j) const {
  const Reader& r = readers_.at(j);
  switch (r.kind) {
    case ReaderKind::Q:
    case ReaderKind::Head: return {head_source(r.layer, r.head)};
    case ReaderKind::K:
    case ReaderKind::V: {
      std::vector<int64_t> o;
      const int64_t per = shape_.n_heads / shape_.n_kv_heads;
      for (int64_t h = r.head * per; h < (r.head + 1) * per; ++h) o.push_back(head_source(r.layer, h));
      return o;
    }
    case ReaderKind::Mlp: return {mlp_source(r.layer)};
    case ReaderKind::Logits: return {};
  }
  return {};
}

std::string Graph::source_name(int64_t i) const {
  const Source& s = sources_.at(i);
  switch (s.kind) {
    case SourceKind::Input: return "input";
    case SourceKind::Head: return "a" + std::to_string(s.layer) + ".h" + std::to_string(s.head);
    case SourceKind::Mlp: return "m" + std::to_string(s.layer);
  }
  return "";
}

std::string Graph::reader_name(int64_t j) const {
  const Reader& r = readers_.at(j);
  std::string a = "a" + std::to_string(r.layer);
  // Without grouping, k/v readers are named by their (single) query head, as in EAP-IG.
  std::string kv = grouped() ? ".kv" + std::to_string(r.head) : ".h" + std::to_string(r.head);
  switch (r.kind) {
    case ReaderKind::Q: return a + ".h" + std::to_string(r.head) + "<q>";
    case ReaderKind::K: return a + kv + "<k>";
    case ReaderKind::V: return a + kv + "<v>";
    case ReaderKind::Head: return a + ".h" + std::to_string(r.head);
    case ReaderKind::Mlp: return "m" + std::to_string(r.layer);
    case ReaderKind::Logits: return "logits";
  }
  return "";
}

std::string Graph::edge_name(int64_t src, int64_t dst) const {
  return source_name(src) + "->" + reader_name(dst);
}

namespace {

// Parses a non-negative decimal integer covering all of s; nullopt otherwise.
std::optional<int64_t> parse_index(const std::string& s) {
  if (s.empty() || s.size() > 9) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

}  // namespace

std::optional<int64_t> Graph::find_source(const std::string& name) const {
  const int64_t L = shape_.n_layers, H = shape_.n_heads;
  if (name == "input") return 0;
  if (name.size() > 1 && name[0] == 'm') {
    auto l = parse_index(name.substr(1));
    if (l && *l < L) return mlp_source(*l);
    return std::nullopt;
  }
  if (name.size() > 1 && name[0] == 'a') {
    auto dot = name.find(".h");
    if (dot == std::string::npos) return std::nullopt;
    auto l = parse_index(name.substr(1, dot - 1));
    auto h = parse_index(name.substr(dot + 2));
    if (l && h && *l < L && *h < H) return head_source(*l, *h);
  }
  return std::nullopt;
}

std::optional<int64_t> Graph::find_reader(const std::string& name) const {
  // Parsed, not searched: circuit files name tens of thousands of edges.
  const int64_t L = shape_.n_layers, H = shape_.n_heads, G = shape_.n_kv_heads;
  const int64_t per_layer = split_ ? H + 2 * G + 1 : H + 1;
  if (name == "logits") return L * per_layer;
  if (name.size() > 1 && name[0] == 'm') {
    auto l = parse_index(name.substr(1));
    if (l && *l < L) return *l * per_layer + per_layer - 1;
    return std::nullopt;
  }
  if (name.size() < 2 || name[0] != 'a') return std::nullopt;
  auto dot = name.find('.');
  if (dot == std::string::npos) return std::nullopt;
  auto l = parse_index(name.substr(1, dot - 1));
  if (!l || *l >= L) return std::nullopt;
  const int64_t base = *l * per_layer;
  std::string rest = name.substr(dot + 1);  // "h3<q>", "kv1<k>", "h3"
  char kind = 0;
  if (rest.size() > 3 && rest.back() == '>' && rest[rest.size() - 3] == '<') {
    kind = rest[rest.size() - 2];
    rest = rest.substr(0, rest.size() - 3);
  }
  if (rest.empty()) return std::nullopt;  // "a1." names no head
  const bool kv_name = rest.rfind("kv", 0) == 0;
  auto idx = parse_index(rest.substr(kv_name ? 2 : 1));
  if ((!kv_name && rest[0] != 'h') || !idx) return std::nullopt;
  if (!split_) {
    if (kind != 0 || kv_name || *idx >= H) return std::nullopt;
    return base + *idx;
  }
  if (kind == 'q' && !kv_name && *idx < H) return base + *idx;
  if ((kind == 'k' || kind == 'v') && kv_name == grouped() && *idx < G)
    return base + H + (kind == 'v' ? G : 0) + *idx;
  return std::nullopt;
}

std::optional<std::pair<int64_t, int64_t>> Graph::find_edge(const std::string& name) const {
  auto arrow = name.find("->");
  if (arrow == std::string::npos) return std::nullopt;
  auto s = find_source(name.substr(0, arrow));
  auto d = find_reader(name.substr(arrow + 2));
  if (!s || !d || !is_edge(*s, *d)) return std::nullopt;
  return std::make_pair(*s, *d);
}

std::vector<uint8_t> Graph::real_edges() const {
  std::vector<uint8_t> m(static_cast<size_t>(n_sources() * n_readers()), 0);
  for (int64_t j = 0; j < n_readers(); ++j)
    for (int64_t i = 0; i < fan_in_[j]; ++i) m[i * n_readers() + j] = 1;
  return m;
}

}  // namespace edgewise
