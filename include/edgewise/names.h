// One {value, name} table per enum serves its name, its parser, the parser's error (which lists
// the choices) and the command line's choices, so the four can never disagree (llama.cpp's
// LLM_ARCH_NAMES). Each enum's header declares its table next to the enum:
//
//   inline constexpr EnumName<Metric> kMetricNames[] = {{Metric::LogitDiff, "logit-diff"}, ...};
//   const char* metric_name(Metric m) { return enum_name(kMetricNames, m); }
//   Metric parse_metric(const std::string& s) { return enum_parse(kMetricNames, s, "metric", "metric"); }
//
// Torch-free and header-only.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "edgewise/error.h"

namespace edgewise {

template <class E>
struct EnumName {
  E value;
  const char* name;
};

/// The name of v in table t ("?" for a value the table lacks, which a test rules out).
template <class E, size_t N>
constexpr const char* enum_name(const EnumName<E> (&t)[N], E v) {
  for (const auto& e : t)
    if (e.value == v) return e.name;
  return "?";
}

/// The choices, comma-separated: "a, b or c".
template <class E, size_t N>
std::string enum_choices_text(const EnumName<E> (&t)[N]) {
  std::string s;
  for (size_t i = 0; i < N; ++i) s += std::string(i == 0 ? "" : (i + 1 == N ? " or " : ", ")) + t[i].name;
  return s;
}

/// The choices as a list (the command line's IsMember check, Python's docstrings).
template <class E, size_t N>
std::vector<std::string> enum_choices(const EnumName<E> (&t)[N]) {
  std::vector<std::string> v;
  for (const auto& e : t) v.emplace_back(e.name);
  return v;
}

/// The value named s; otherwise Error "<where>: unknown <what> 's' (expected a, b or c)".
template <class E, size_t N>
E enum_parse(const EnumName<E> (&t)[N], std::string_view s, const std::string& where, const std::string& what) {
  for (const auto& e : t)
    if (s == e.name) return e.value;
  fail(where, "unknown " + what + " '" + std::string(s) + "' (expected " + enum_choices_text(t) + ")");
}

}  // namespace edgewise
