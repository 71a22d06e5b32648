// The circuit graph: sources (writers to the residual stream), readers (what reads it), and the
// edges between them, as dense indices. Names follow EAP-IG / MIB so circuits can be exchanged:
//   sources  input, a{l}.h{h}, m{l}
//   readers  a{l}.h{h}<q>, a{l}.h{h}<k>, a{l}.h{h}<v> (or, for grouped-query models, one k and
//            one v reader per key/value head: a{l}.kv{g}<k>, a{l}.kv{g}<v>), m{l}, logits;
//            at head level (no q/k/v split) the readers are a{l}.h{h}, m{l}, logits.
// Edge src->dst exists when src writes before dst reads: every source of an earlier layer (and
// input) feeds every reader of layer l; the heads of layer l also feed m{l}, unless the block is
// parallel (attention and MLP read the same residual: GPT-NeoX, GPT-J); everything feeds
// logits. Scores and masks are [n_src, n_dst] tensors with real_edges() marking real edges; an
// edge's name is computed from its indices, never stored.
// Torch-free: masks and the patched forward live in graph/patch (later).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace edgewise {

struct GraphShape {
  int64_t n_layers = 0, n_heads = 0, n_kv_heads = 0;
  /// Parallel attention + MLP blocks (ModelConfig::block.parallel): no head -> same-layer MLP
  /// edges. Circuit files carry it as cfg.parallel_attn_mlp (EAP-IG's name).
  bool parallel = false;
  bool operator==(const GraphShape&) const = default;
};

class Graph {
 public:
  enum class SourceKind { Input, Head, Mlp };
  enum class ReaderKind { Q, K, V, Head, Mlp, Logits };  ///< Head: head-level (unsplit) reader

  struct Source {
    SourceKind kind;
    int64_t layer;  ///< -1 for input
    int64_t head;   ///< -1 unless Head
  };
  struct Reader {
    ReaderKind kind;
    int64_t layer;  ///< n_layers for logits
    int64_t head;   ///< query head (Q, Head) or key/value head (K, V); -1 otherwise
  };

  /// split_qkv: separate q/k/v readers (EAP-IG's default); else one reader per head.
  Graph(GraphShape shape, bool split_qkv);

  const GraphShape& shape() const { return shape_; }
  bool split_qkv() const { return split_; }
  bool grouped() const { return shape_.n_kv_heads != shape_.n_heads; }

  int64_t n_sources() const { return static_cast<int64_t>(sources_.size()); }
  int64_t n_readers() const { return static_cast<int64_t>(readers_.size()); }
  int64_t n_edges() const { return n_edges_; }

  const Source& source(int64_t i) const { return sources_[i]; }
  const Reader& reader(int64_t j) const { return readers_[j]; }
  /// Index of the first source written at or after layer l (input = 0; heads of l; m{l}).
  int64_t source_begin(int64_t layer) const;
  /// Number of sources a reader of `layer` can see (its prefix of the source list):
  /// attention readers of layer l see input and everything of layers < l.
  int64_t sources_before_attn(int64_t layer) const;
  /// ... and the MLP of layer l also sees the heads of layer l (sequential blocks; a parallel
  /// block's MLP sees what its attention sees).
  int64_t sources_before_mlp(int64_t layer) const;
  /// Number of sources reader j can see (its edges are exactly sources [0, n)).
  int64_t reader_fan_in(int64_t j) const;
  bool is_edge(int64_t src, int64_t dst) const { return src < reader_fan_in(dst); }

  /// The source nodes reader j feeds: its head (q, head level), every head of its key/value
  /// group (k, v), its MLP; none for the logits.
  std::vector<int64_t> reader_nodes(int64_t j) const;
  std::string source_name(int64_t i) const;
  std::string reader_name(int64_t j) const;
  std::string edge_name(int64_t src, int64_t dst) const;
  /// Inverse of the names; nullopt when the name is not in this graph.
  std::optional<int64_t> find_source(const std::string& name) const;
  std::optional<int64_t> find_reader(const std::string& name) const;
  /// "a->b" into (src, dst); nullopt when malformed or not an edge of this graph.
  std::optional<std::pair<int64_t, int64_t>> find_edge(const std::string& name) const;

  /// Index of the MLP source of layer l, of head h of layer l.
  int64_t head_source(int64_t layer, int64_t head) const { return 1 + layer * (shape_.n_heads + 1) + head; }
  int64_t mlp_source(int64_t layer) const { return 1 + layer * (shape_.n_heads + 1) + shape_.n_heads; }
  /// Row-major [n_src, n_dst] flags: 1 where the edge exists.
  std::vector<uint8_t> real_edges() const;

 private:
  GraphShape shape_;
  bool split_;
  std::vector<Source> sources_;
  std::vector<Reader> readers_;
  std::vector<int64_t> fan_in_;  // per reader
  int64_t n_edges_ = 0;
};

}  // namespace edgewise
