// Hooks: which hook points a caller asked for, and the two stock callbacks (all points, capture
// into a map). The forward pass (forward.cpp) decides where each point is; this file only
// answers "is it wanted?".
// Not here: the hook names themselves (forward.cpp names them where they are computed).
#include "edgewise/model.h"

namespace edgewise {

Hooks Hooks::all(Fn fn) {
  Hooks h;
  h.fn_ = std::move(fn);
  h.all_ = true;
  return h;
}

Hooks Hooks::capture(std::set<std::string> names, std::map<std::string, at::Tensor>* out) {
  return Hooks(std::move(names), [out](const at::Tensor& t, const std::string& name) {
    (*out)[name] = t;
    return at::Tensor();
  });
}

bool Hooks::wants_any_prefix(const std::string& prefix) const {
  if (all_) return true;
  auto it = names_.lower_bound(prefix);
  return it != names_.end() && it->compare(0, prefix.size(), prefix) == 0;
}

}  // namespace edgewise
