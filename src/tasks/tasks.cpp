// Built-in seeded task generators (IOI, Greater-Than, Induction, Gendered Pronouns, Docstring,
// subject-verb agreement).
// Each keeps only the names / answers that are single tokens in the loaded tokenizer and fails
// with an Error naming the task and what was missing when too few remain. Randomness is one
// std::mt19937_64 per call, seeded by TaskOptions::seed, drawn in a fixed order.
// Not here: file loaders and tokenized batches (dataset.cpp), metrics (metrics.cpp).
#include "edgewise/tasks.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <set>
#include <tuple>
#include <utility>

#include "edgewise/error.h"

namespace edgewise {

namespace {

using Rng = std::mt19937_64;

// Uniform index in [0, n).
size_t pick(Rng& rng, size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); }

// k distinct indices in [0, n) (k <= n), in draw order.
std::vector<size_t> pick_distinct(Rng& rng, size_t n, size_t k) {
  std::vector<size_t> out;
  while (out.size() < k) {
    size_t i = pick(rng, n);
    if (std::find(out.begin(), out.end(), i) == out.end()) out.push_back(i);
  }
  return out;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
    s.replace(p, from.size(), to);
  return s;
}

// The words of `words` that are single tokens when preceded by a space.
std::vector<std::string> single_token_words(const Tokenizer& tok, const std::vector<std::string>& words) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& w : words)
    if (seen.insert(w).second && single_token(tok, " " + w) >= 0) out.push_back(w);
  return out;
}

void require(const std::string& task, const std::vector<std::string>& kept, size_t need,
             size_t total, const std::string& what) {
  if (kept.size() < need)
    fail("task " + task, "only " + std::to_string(kept.size()) + " of " + std::to_string(total) + " " +
                             what + " are single tokens (with a leading space) in this tokenizer; need at least " +
                             std::to_string(need));
}

void check_n(const std::string& task, const TaskOptions& opt) {
  if (opt.n <= 0) fail("task " + task, "number of examples must be positive, got " + std::to_string(opt.n));
}

// ---- word lists ----

// First names (the IOI name list of Wang et al. 2022 is of this kind: common US first names).
const std::vector<std::string> kIoiNames = {
    "Michael", "Christopher", "Jessica", "Matthew", "Ashley", "Jennifer", "Joshua", "Amanda", "Daniel",
    "David", "James", "Robert", "John", "Joseph", "Andrew", "Ryan", "Brandon", "Jason", "Justin", "Sarah",
    "William", "Jonathan", "Stephanie", "Brian", "Nicole", "Nicholas", "Anthony", "Heather", "Eric",
    "Elizabeth", "Adam", "Megan", "Melissa", "Kevin", "Steven", "Thomas", "Timothy", "Christina", "Kyle",
    "Rachel", "Laura", "Lauren", "Amber", "Brittany", "Danielle", "Richard", "Kimberly", "Jeffrey", "Amy",
    "Crystal", "Michelle", "Tiffany", "Jeremy", "Benjamin", "Mark", "Emily", "Aaron", "Charles", "Rebecca",
    "Jacob", "Stephen", "Patrick", "Sean", "Erin", "Jamie", "Kelly", "Samantha", "Nathan", "Sara", "Dustin",
    "Paul", "Angela", "Tyler", "Scott", "Katherine", "Andrea", "Gregory", "Erica", "Mary", "Travis", "Lisa",
    "Kenneth", "Bryan", "Lindsey", "Kristen", "Jose", "Alexander", "Jesse", "Katie", "Lindsay", "Shannon",
    "Vanessa", "Courtney", "Christine", "Alicia", "Cody", "Allison", "Bradley", "Samuel"};

const std::vector<std::string> kIoiPlaces = {"store", "garden", "restaurant", "school", "hospital", "office", "house", "station"};
const std::vector<std::string> kIoiObjects = {"ring", "kiss", "bone", "basketball", "computer", "necklace", "drink", "snack"};

// BABA templates: [B] is the subject (mentioned twice), [A] the indirect object. The prompt is the
// template up to the final " [A]", which is the answer. ABBA swaps the first two mentions.
const std::vector<std::string> kIoiTemplates = {
    "Then, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Then, [B] and [A] had a lot of fun at the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Then, [B] and [A] were working at the [PLACE]. [B] decided to give a [OBJECT] to [A]",
    "Then, [B] and [A] were thinking about going to the [PLACE]. [B] wanted to give a [OBJECT] to [A]",
    "Then, [B] and [A] had a long argument, and afterwards [B] said to [A]",
    "After [B] and [A] went to the [PLACE], [B] gave a [OBJECT] to [A]",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give it to [A]",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give the [OBJECT] to [A]",
    "While [B] and [A] were working at the [PLACE], [B] gave a [OBJECT] to [A]",
    "While [B] and [A] were commuting to the [PLACE], [B] gave a [OBJECT] to [A]",
    "After the lunch, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Afterwards, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Then, [B] and [A] had a long argument. Afterwards [B] said to [A]",
    "The [PLACE] [B] and [A] went to had a [OBJECT]. [B] gave it to [A]",
    "Friends [B] and [A] found a [OBJECT] at the [PLACE]. [B] gave it to [A]",
};

// Event nouns of the Greater-Than dataset's kind (Hanna et al. 2023).
const std::vector<std::string> kGtNouns = {
    "war", "dynasty", "reign", "expedition", "siege", "treaty", "journey", "marriage", "plague",
    "campaign", "conflict", "rebellion", "occupation", "voyage", "crisis", "trial", "project",
    "alliance", "embargo", "famine", "investigation", "negotiation", "operation", "pilgrimage",
    "program", "relationship", "riot", "rivalry", "study", "tour", "tradition", "trip", "insurgency",
    "invasion", "kingdom", "outbreak", "partnership", "quest", "raid", "strike", "attack", "affair",
    "agreement", "collaboration", "construction", "contract", "deal", "dispute", "effort", "epidemic"};

const std::vector<std::string> kMaleNames = {
    "John", "David", "Michael", "James", "Robert", "William", "Richard", "Thomas", "Charles", "Daniel",
    "Matthew", "Anthony", "Mark", "Paul", "Steven", "Andrew", "Kevin", "Brian", "George", "Edward",
    "Ronald", "Timothy", "Jason", "Jeffrey", "Ryan", "Jacob", "Gary", "Eric", "Jonathan", "Stephen",
    "Larry", "Justin", "Scott", "Brandon", "Frank", "Benjamin", "Gregory", "Samuel", "Raymond", "Patrick",
    "Alexander", "Jack", "Dennis", "Jerry", "Tyler", "Aaron", "Henry", "Adam", "Peter", "Nathan"};
const std::vector<std::string> kFemaleNames = {
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen",
    "Nancy", "Lisa", "Betty", "Margaret", "Sandra", "Ashley", "Kimberly", "Emily", "Donna", "Michelle",
    "Dorothy", "Carol", "Amanda", "Melissa", "Deborah", "Stephanie", "Rebecca", "Sharon", "Laura", "Cynthia",
    "Kathleen", "Amy", "Shirley", "Angela", "Helen", "Anna", "Brenda", "Pamela", "Nicole", "Emma",
    "Samantha", "Katherine", "Christine", "Debra", "Rachel", "Catherine", "Carolyn", "Janet", "Ruth", "Maria"};
// Templates ending right before the pronoun (Mathwin et al. use the first one).
const std::vector<std::string> kPronounTemplates = {
    "So [NAME] is a really great friend, isn't",
    "So [NAME] is such a good cook, isn't",
    "Well, [NAME] is a very kind person, isn't",
    "So [NAME] is really good at chess, isn't",
    "And [NAME] is a very hard worker, isn't",
};

// Common short identifiers / words for docstring parameter names and descriptions.
const std::vector<std::string> kDocWords = {
    "load", "size", "files", "last", "name", "data", "path", "mode", "item", "key", "value", "index",
    "count", "text", "line", "user", "host", "port", "state", "model", "image", "shape", "color", "field",
    "target", "source", "parent", "child", "node", "edge", "graph", "label", "title", "page", "table",
    "query", "result", "token", "group", "order", "price", "level", "limit", "start", "end", "step",
    "time", "date", "year", "month", "day", "hour", "week", "file", "folder", "config", "option", "flag",
    "width", "height", "depth", "length", "number", "total", "weight", "score", "rate", "ratio", "factor",
    "scale", "offset", "buffer", "stream", "client", "server", "request", "response", "message", "error",
    "status", "code", "type", "kind", "format", "style", "content", "context", "event", "action", "task",
    "job", "queue", "stack", "list", "array", "matrix", "vector", "point", "crime", "population", "unit",
    "dark", "oil", "column", "piece", "table", "window", "door", "river", "tree", "horse", "money",
    "market", "school", "world", "house", "field", "paper", "music", "game", "story", "water", "light"};

// Subject-verb agreement. Word pairs are (singular, plural).
using WordPair = std::pair<std::string, std::string>;
// Subject nouns: people and animals (also the distractor of the relative clause, "that the guard
// likes") and things. Regular and irregular plurals; a pair is dropped per tokenizer when its two
// forms have different token counts (GPT-2: " painter" is one token, " painters" two), so that
// clean and corrupted prompts stay aligned.
const std::vector<WordPair> kSvaPeople = {
    {"author", "authors"}, {"guard", "guards"}, {"pilot", "pilots"}, {"farmer", "farmers"},
    {"teacher", "teachers"}, {"doctor", "doctors"}, {"senator", "senators"}, {"dancer", "dancers"},
    {"lawyer", "lawyers"}, {"singer", "singers"}, {"student", "students"}, {"officer", "officers"},
    {"driver", "drivers"}, {"painter", "painters"}, {"nurse", "nurses"}, {"manager", "managers"},
    {"soldier", "soldiers"}, {"customer", "customers"}, {"player", "players"}, {"worker", "workers"},
    {"artist", "artists"}, {"writer", "writers"}, {"judge", "judges"}, {"neighbor", "neighbors"},
    {"king", "kings"}, {"boy", "boys"}, {"girl", "girls"}, {"baker", "bakers"}, {"mayor", "mayors"},
    {"waiter", "waiters"}, {"dog", "dogs"}, {"horse", "horses"}, {"man", "men"}, {"woman", "women"},
    {"child", "children"}, {"person", "people"}, {"wife", "wives"}, {"thief", "thieves"},
    {"mouse", "mice"}, {"goose", "geese"}, {"wolf", "wolves"}, {"ox", "oxen"}};
const std::vector<WordPair> kSvaThings = {
    {"key", "keys"}, {"cabinet", "cabinets"}, {"table", "tables"}, {"box", "boxes"}, {"book", "books"},
    {"door", "doors"}, {"window", "windows"}, {"car", "cars"}, {"house", "houses"}, {"picture", "pictures"},
    {"letter", "letters"}, {"bottle", "bottles"}, {"chair", "chairs"}, {"lamp", "lamps"}, {"tree", "trees"},
    {"city", "cities"}, {"story", "stories"}, {"knife", "knives"}, {"leaf", "leaves"}, {"tooth", "teeth"},
    {"foot", "feet"}, {"cactus", "cacti"}};
// Answers: both forms must be single tokens (with a leading space). Every example is scored on
// all kept pairs: correct = the forms agreeing with the subject, incorrect = the other forms.
const std::vector<WordPair> kSvaVerbs = {
    {"is", "are"}, {"was", "were"}, {"has", "have"}, {"does", "do"},
    {"seems", "seem"}, {"looks", "look"}, {"needs", "need"}, {"runs", "run"}};
// Verbs of the relative clause; they agree with the distractor and are the same in both prompts.
const std::vector<WordPair> kSvaClauseVerbs = {
    {"likes", "like"}, {"sees", "see"}, {"knows", "know"}, {"hates", "hate"}, {"admires", "admire"},
    {"follows", "follow"}, {"trusts", "trust"}, {"meets", "meet"}, {"helps", "help"}, {"watches", "watch"},
    {"visits", "visit"}, {"remembers", "remember"}};
const std::vector<std::string> kSvaPreps = {"near", "behind", "beside", "next to", "across from", "with", "above", "below"};
// [S] subject, [D] distractor (the other number), [PREP] preposition, [V] clause verb (agrees with [D]).
// The prompt ends right before the main verb.
const std::vector<std::string> kSvaTemplates = {
    "The [S]",                    // plain
    "The [S] [PREP] the [D]",     // prepositional distractor
    "The [S] that the [D] [V]",   // relative clause (object-extracted) distractor
};

}  // namespace

int32_t single_token(const Tokenizer& tok, const std::string& text) {
  auto ids = tok.encode_continuation(text);
  return ids.size() == 1 ? ids[0] : -1;
}

const std::vector<std::string>& task_names() {
  static const std::vector<std::string> names = {"ioi", "greater-than", "induction", "gendered-pronouns", "docstring",
                                                  "sva"};
  return names;
}

const std::vector<std::string>& tracr_task_names() {
  static const std::vector<std::string> names = {"tracr-reverse", "tracr-xproportion"};
  return names;
}

bool is_builtin_task(const std::string& name) {
  for (const auto* list : {&task_names(), &tracr_task_names()})
    if (std::find(list->begin(), list->end(), name) != list->end()) return true;
  return false;
}

TaskDefaults task_defaults(const std::string& name) {
  // Zero ablation: resample ablation cannot find these circuits (a corrupted input of the same
  // length keeps the length computation), as ACDC's Tracr experiments found.
  // MSE against the full model's outputs, ACDC's "l2" (its KL on Tracr's near one-hot outputs
  // it calls ill-defined; edgewise's KL reads the outputs as logits and is available).
  const auto& tracr = tracr_task_names();
  if (std::find(tracr.begin(), tracr.end(), name) != tracr.end()) return {"mse", "zero"};
  return {};
}

Dataset make_task(const std::string& name, const Tokenizer& tok, const TaskOptions& opt) {
  if (name == "tracr-reverse") return make_tracr_reverse(tok, opt);
  if (name == "tracr-xproportion") return make_tracr_xproportion(tok, opt);
  if (tok.word_level() && is_builtin_task(name))
    fail("task " + name, "this model has a Tracr word vocabulary; the language tasks need a language model's "
                         "tokenizer (its tasks: tracr-reverse, tracr-xproportion)");
  if (name == "ioi") return make_ioi(tok, opt);
  if (name == "greater-than") return make_greater_than(tok, opt);
  if (name == "induction") return make_induction(tok, opt);
  if (name == "gendered-pronouns") return make_gendered_pronouns(tok, opt);
  if (name == "docstring") return make_docstring(tok, opt);
  if (name == "sva") return make_sva(tok, opt);
  std::string known;
  for (const auto* list : {&task_names(), &tracr_task_names()})
    for (const auto& n : *list) known += (known.empty() ? "" : ", ") + n;
  fail("task " + name, "unknown task; built-in tasks are " + known);
}

// ---- Tracr ----

namespace {

// Every sequence of `len` words over `alphabet`, in a seeded order; each expands to one example per
// output position 1..len (BOS is position 0), and the first opt.n examples are kept.
// `answers(seq, p)` gives the correct and incorrect output labels at position p.
template <class Answers>
Dataset tracr_task(const std::string& task, const std::string& program, const Tokenizer& tok, const TaskOptions& opt,
                   const std::vector<std::string>& alphabet, const std::vector<std::string>& outputs, Answers answers) {
  check_n(task, opt);
  const std::string hint = " (the task runs on the Tracr " + program + " model, e.g. tests/data/tracr/" + program +
                           "; tools/tracr/export.py writes it)";
  if (!tok.word_level() || !tok.bos_id()) fail("task " + task, "this model has no Tracr vocabulary" + hint);
  for (const std::string& w : alphabet)
    if (!tok.find(w)) fail("task " + task, "this model's vocabulary has no word '" + w + "'" + hint);
  if (tok.output_labels() != outputs) {
    std::string want;
    for (const std::string& o : outputs) want += (want.empty() ? "" : " ") + o;
    fail("task " + task, "this model's outputs are not the program's (" + want + ")" + hint);
  }
  // Inputs shorter than the compiled maximum (5): at the maximum, reverse's length computation
  // (a0.h0 -> m0) gives the same answer ablated or not (a zeroed width reads as the largest), so
  // no faithfulness method could find it; ACDC's reverse data are of length 3 for that reason.
  // One length for all: the attention is not causal, so a batch must have no padding.
  const int64_t len = 4;
  int64_t n_seq = 1;
  for (int64_t i = 0; i < len; ++i) n_seq *= static_cast<int64_t>(alphabet.size());
  std::vector<int64_t> order(n_seq);
  for (int64_t i = 0; i < n_seq; ++i) order[i] = i;
  Rng rng(opt.seed);
  std::shuffle(order.begin(), order.end(), rng);
  auto seq_of = [&](int64_t code) {
    std::vector<std::string> s(len);
    for (int64_t i = len - 1; i >= 0; --i, code /= static_cast<int64_t>(alphabet.size()))
      s[i] = alphabet[code % static_cast<int64_t>(alphabet.size())];
    return s;
  };
  auto text_of = [](const std::vector<std::string>& s) {
    std::string t;
    for (const std::string& w : s) t += (t.empty() ? "" : " ") + w;
    return t;
  };
  Dataset ds;
  ds.name = task;
  const int64_t total = n_seq * len, n = std::min(opt.n, total);
  ds.description = "Tracr " + program + ": " + std::to_string(n) + " of the " + std::to_string(total) +
                   " (sequence, position) pairs of length-" + std::to_string(len) + " inputs, seed " +
                   std::to_string(opt.seed);
  const TaskDefaults d = task_defaults(task);
  ds.default_metric = d.metric;
  ds.default_ablation = d.ablation;
  for (int64_t k = 0; static_cast<int64_t>(ds.examples.size()) < n; ++k) {
    const std::vector<std::string> s = seq_of(order[k]);
    int64_t other = static_cast<int64_t>(pick(rng, n_seq - 1));  // a different sequence, uniformly
    if (other >= order[k]) ++other;
    const std::string clean = text_of(s), corrupted = text_of(seq_of(other));
    for (int64_t p = 1; p <= len && static_cast<int64_t>(ds.examples.size()) < n; ++p) {
      Example ex;
      ex.clean = clean;
      ex.corrupted = corrupted;
      ex.position = p;
      std::tie(ex.correct, ex.incorrect) = answers(s, p);
      ds.examples.push_back(std::move(ex));
    }
  }
  return ds;
}

}  // namespace

Dataset make_tracr_reverse(const Tokenizer& tok, const TaskOptions& opt) {
  const std::vector<std::string> alphabet = {"1", "2", "3"};
  return tracr_task("tracr-reverse", "reverse", tok, opt, alphabet, alphabet,
                    [&](const std::vector<std::string>& s, int64_t p) {
                      // Output at position p (1-based after BOS) is the input token at len + 1 - p.
                      const std::string right = s[s.size() - static_cast<size_t>(p)];
                      std::vector<std::string> wrong;
                      for (const std::string& a : alphabet)
                        if (a != right) wrong.push_back(a);
                      return std::pair{std::vector<std::string>{right}, wrong};
                    });
}

Dataset make_tracr_xproportion(const Tokenizer& tok, const TaskOptions& opt) {
  // One numerical output: its value is read by the MSE metric against the full model's; the
  // "correct answer" is that output (logit-diff then reads the value itself).
  return tracr_task("tracr-xproportion", "xproportion", tok, opt, {"w", "x", "y", "z"}, {"value"},
                    [](const std::vector<std::string>&, int64_t) {
                      return std::pair{std::vector<std::string>{"value"}, std::vector<std::string>{}};
                    });
}

// ---- IOI ----

Dataset make_ioi(const Tokenizer& tok, const TaskOptions& opt) {
  const std::string task = "ioi";
  check_n(task, opt);
  auto names = single_token_words(tok, kIoiNames);
  require(task, names, 5, kIoiNames.size(), "names");
  Rng rng(opt.seed);
  Dataset ds;
  ds.name = task;
  ds.description = "IOI (Wang et al. 2022), " + std::to_string(kIoiTemplates.size()) +
                   " templates x BABA/ABBA, ABC corruption, " + std::to_string(names.size()) +
                   " single-token names, seed " + std::to_string(opt.seed);
  for (int64_t i = 0; i < opt.n; ++i) {
    std::string tpl = kIoiTemplates[pick(rng, kIoiTemplates.size())];
    const bool abba = i % 2 == 1;  // alternate BABA / ABBA
    // names: A (indirect object), B (subject), then C, D, E for the corruption
    auto idx = pick_distinct(rng, names.size(), 5);
    const std::string place = kIoiPlaces[pick(rng, kIoiPlaces.size())];
    const std::string object = kIoiObjects[pick(rng, kIoiObjects.size())];
    // The prompt ends before the final " [A]".
    tpl = tpl.substr(0, tpl.rfind(" [A]"));
    // First mentions "[B] and [A]" (BABA) or "[A] and [B]" (ABBA); second mention "[B]" (S2).
    tpl = replace_all(tpl, "[B] and [A]", "[X1] and [X2]");
    tpl = replace_all(tpl, "[B]", "[S2]");
    tpl = replace_all(tpl, "[PLACE]", place);
    tpl = replace_all(tpl, "[OBJECT]", object);
    auto fill = [&](const std::string& x1, const std::string& x2, const std::string& s2) {
      std::string s = replace_all(tpl, "[X1]", x1);
      s = replace_all(s, "[X2]", x2);
      return replace_all(s, "[S2]", s2);
    };
    const std::string& A = names[idx[0]];
    const std::string& B = names[idx[1]];
    Example ex;
    ex.clean = abba ? fill(A, B, B) : fill(B, A, B);
    // ABC: all three name positions get names unrelated to A and B.
    ex.corrupted = fill(names[idx[2]], names[idx[3]], names[idx[4]]);
    ex.correct = {" " + A};
    ex.incorrect = {" " + B};
    ds.examples.push_back(std::move(ex));
  }
  return ds;
}

// ---- Greater-Than ----

Dataset make_greater_than(const Tokenizer& tok, const TaskOptions& opt) {
  const std::string task = "greater-than";
  check_n(task, opt);
  auto nouns = single_token_words(tok, kGtNouns);
  require(task, nouns, 5, kGtNouns.size(), "event nouns");
  // Two-digit mode: every "00".."99" is one token and " 1732" splits as " 17" + "32" (GPT-2).
  // Digit mode: digits are single tokens and years split into digits (SmolLM2, Qwen2, Llama-3
  // splits into groups of 3 and is neither -> error).
  auto two = [](int v) { char b[16]; std::snprintf(b, sizeof b, "%02d", v); return std::string(b); };
  bool two_digit = true;
  for (int v = 0; v < 100 && two_digit; ++v) two_digit = single_token(tok, two(v)) >= 0;
  bool digit = true;
  for (int v = 0; v < 10 && digit; ++v) digit = single_token(tok, std::to_string(v)) >= 0;
  digit = digit && tok.encode("1732").size() == 4;
  if (!two_digit && !digit)
    fail("task " + task, "this tokenizer has neither single-token two-digit numbers (\"00\"..\"99\") nor "
                         "single-digit splitting of years (\"1732\" -> 4 tokens); no answer rule applies");
  Rng rng(opt.seed);
  Dataset ds;
  ds.name = task;
  ds.description = std::string("Greater-Than (Hanna et al. 2023), ") +
                   (two_digit ? "two-digit answers YY" : "digit variant: answer = tens digit of the end year") +
                   ", corrupted start year XX01, seed " + std::to_string(opt.seed);
  int64_t attempts = 0;
  while ((int64_t)ds.examples.size() < opt.n) {
    if (++attempts > opt.n * 50)
      fail("task " + task, "could not find years that tokenize as \" XX\" + \"YY\" in this tokenizer (tried " +
                               std::to_string(attempts) + ")");
    const std::string noun = nouns[pick(rng, nouns.size())];
    const int century = 11 + (int)pick(rng, 7);  // 11..17
    // YY in 02..98 (two-digit); 10..89 in digit mode so that some tens digit is above and below.
    const int yy = two_digit ? 2 + (int)pick(rng, 97) : 10 + (int)pick(rng, 80);
    const std::string XX = std::to_string(century);
    const std::string prefix = "The " + noun + " lasted from the year ";
    Example ex;
    ex.clean = prefix + XX + two(yy) + " to the year " + XX;
    ex.corrupted = prefix + XX + "01 to the year " + XX;
    if (two_digit) {
      // Keep years whose tokens are " XX" + "YY", as Hanna et al. do.
      auto t = tok.encode_continuation(" " + XX + two(yy));
      if (t.size() != 2 || single_token(tok, " " + XX) != t[0]) continue;
      for (int v = 0; v < 100; ++v) (v > yy ? ex.correct : ex.incorrect).push_back(two(v));
    } else {
      const int tens = yy / 10;
      for (int d = 0; d < 10; ++d) {
        if (d > tens) ex.correct.push_back(std::to_string(d));
        if (d < tens) ex.incorrect.push_back(std::to_string(d));
      }
    }
    ds.examples.push_back(std::move(ex));
  }
  return ds;
}

// ---- Induction ----

Dataset make_induction(const Tokenizer& tok, const TaskOptions& opt) {
  const std::string task = "induction";
  check_n(task, opt);
  const int L = 10;  // length of the random sequence; the prompt is L + (L - 1) tokens
  // Pool: tokens " word" of 3+ lowercase ASCII letters that re-encode to themselves, so prompts
  // can be kept as text.
  std::vector<std::string> pool;
  const int32_t V = tok.vocab_size();
  for (int32_t id = 0; id < V; ++id) {
    std::string s = tok.token_text(id);
    if (s.size() < 4 || s[0] != ' ') continue;
    bool ok = true;
    for (size_t c = 1; c < s.size() && ok; ++c) ok = s[c] >= 'a' && s[c] <= 'z';
    if (ok && single_token(tok, s) == id) pool.push_back(s);
  }
  if ((int64_t)pool.size() < 4 * L)
    fail("task " + task, "only " + std::to_string(pool.size()) +
                             " tokens of the form \" word\" (3+ lowercase letters) in this tokenizer; need " +
                             std::to_string(4 * L));
  Rng rng(opt.seed);
  Dataset ds;
  ds.name = task;
  ds.description = "Induction: " + std::to_string(L) + " random single-token words repeated, predict token " +
                   std::to_string(L) + " of the repeat; pool of " + std::to_string(pool.size()) +
                   " tokens, seed " + std::to_string(opt.seed);
  for (int64_t i = 0; i < opt.n; ++i) {
    auto idx = pick_distinct(rng, pool.size(), 2 * L);  // A = idx[0..L), B = idx[L..2L)
    size_t control;
    do control = pick(rng, pool.size());
    while (std::find(idx.begin(), idx.end(), control) != idx.end());
    std::string a, b_half, a_half;
    for (int k = 0; k < L; ++k) a += pool[idx[k]];
    for (int k = 0; k < L - 1; ++k) a_half += pool[idx[k]], b_half += pool[idx[L + k]];
    Example ex;
    ex.clean = a + a_half;
    ex.corrupted = a + b_half;
    ex.correct = {pool[idx[L - 1]]};
    ex.incorrect = {pool[control]};  // a random pool token absent from both sequences
    if ((int)tok.encode(ex.clean).size() != 2 * L - 1 || (int)tok.encode(ex.corrupted).size() != 2 * L - 1)
      fail("task " + task + ", example " + std::to_string(i),
           "the prompt did not re-encode to " + std::to_string(2 * L - 1) + " tokens: \"" + ex.clean + "\"");
    ds.examples.push_back(std::move(ex));
  }
  return ds;
}

// ---- Gendered pronouns ----

Dataset make_gendered_pronouns(const Tokenizer& tok, const TaskOptions& opt) {
  const std::string task = "gendered-pronouns";
  check_n(task, opt);
  if (single_token(tok, " he") < 0 || single_token(tok, " she") < 0)
    fail("task " + task, "\" he\" and \" she\" must be single tokens in this tokenizer");
  auto male = single_token_words(tok, kMaleNames);
  auto female = single_token_words(tok, kFemaleNames);
  require(task, male, 5, kMaleNames.size(), "male names");
  require(task, female, 5, kFemaleNames.size(), "female names");
  Rng rng(opt.seed);
  Dataset ds;
  ds.name = task;
  ds.description = "Gendered pronouns (Mathwin et al.), " + std::to_string(kPronounTemplates.size()) +
                   " templates, corrupted = a name of the other gender, " + std::to_string(male.size()) +
                   " male / " + std::to_string(female.size()) + " female names, seed " + std::to_string(opt.seed);
  for (int64_t i = 0; i < opt.n; ++i) {
    const std::string& tpl = kPronounTemplates[pick(rng, kPronounTemplates.size())];
    const bool is_male = i % 2 == 0;
    const auto& same = is_male ? male : female;
    const auto& other = is_male ? female : male;
    const std::string n1 = same[pick(rng, same.size())];
    const std::string n2 = other[pick(rng, other.size())];
    Example ex;
    ex.clean = replace_all(tpl, "[NAME]", n1);
    ex.corrupted = replace_all(tpl, "[NAME]", n2);
    ex.correct = {is_male ? " he" : " she"};
    ex.incorrect = {is_male ? " she" : " he"};
    ds.examples.push_back(std::move(ex));
  }
  return ds;
}

// ---- Docstring ----

Dataset make_docstring(const Tokenizer& tok, const TaskOptions& opt) {
  const std::string task = "docstring";
  check_n(task, opt);
  auto words = single_token_words(tok, kDocWords);
  require(task, words, 30, kDocWords.size(), "identifier words");
  Rng rng(opt.seed);
  Dataset ds;
  ds.name = task;
  ds.description = "Docstring (Heimersheim & Janiak 2023): 2 prefix + 3 documented + 1 suffix parameters, "
                   "predict the 3rd documented name, random_random corruption, " +
                   std::to_string(words.size()) + " single-token words, seed " + std::to_string(opt.seed);
  // def f(self, p1, p2, m1, m2, m3, s1): docstring documents m1, m2; the answer is " m3".
  auto render = [](const std::string& fn, const std::vector<std::string>& args, const std::string& doc_a,
                   const std::string& doc_b, const std::vector<std::string>& desc) {
    std::string s = "def " + fn + "(self";
    for (const auto& a : args) s += ", " + a;
    s += "):\n    \"\"\"" + desc[0] + " " + desc[1] + " " + desc[2] + "\n\n";
    s += "    :param " + doc_a + ": " + desc[3] + " " + desc[4] + "\n";
    s += "    :param " + doc_b + ": " + desc[5] + " " + desc[6] + "\n";
    s += "    :param";
    return s;
  };
  for (int64_t i = 0; i < opt.n; ++i) {
    // 6 clean args + 6 corrupted args + 2 corrupted docstring names, all distinct; fn and descriptions free.
    auto idx = pick_distinct(rng, words.size(), 14);
    std::vector<std::string> args, cargs;
    for (int k = 0; k < 6; ++k) args.push_back(words[idx[k]]), cargs.push_back(words[idx[6 + k]]);
    const std::string fn = words[pick(rng, words.size())];
    std::vector<std::string> desc;
    for (int k = 0; k < 7; ++k) desc.push_back(words[pick(rng, words.size())]);
    Example ex;
    ex.clean = render(fn, args, args[2], args[3], desc);
    // random_random: new random def arguments and new random (different) docstring names.
    ex.corrupted = render(fn, cargs, words[idx[12]], words[idx[13]], desc);
    ex.correct = {" " + args[4]};
    for (int k : {0, 1, 2, 3, 5}) ex.incorrect.push_back(" " + args[k]);
    ds.examples.push_back(std::move(ex));
  }
  return ds;
}

// ---- Subject-verb agreement ----

namespace {

// Lists up to 5 items, then "... and N more".
std::string list_some(const std::vector<std::string>& items) {
  std::string s;
  for (size_t i = 0; i < items.size() && i < 5; ++i) s += (i ? ", " : "") + items[i];
  if (items.size() > 5) s += ", ... and " + std::to_string(items.size() - 5) + " more";
  return s;
}

// The noun pairs whose " singular" and " plural" have equal token counts; the others are
// appended to `dropped` as "painter/painters (1 vs 2 tokens)".
std::vector<WordPair> sva_aligned_nouns(const Tokenizer& tok, const std::vector<WordPair>& pairs,
                                        std::vector<std::string>& dropped) {
  std::vector<WordPair> out;
  for (const auto& [sg, pl] : pairs) {
    const size_t a = tok.encode_continuation(" " + sg).size(), b = tok.encode_continuation(" " + pl).size();
    if (a == b) out.push_back({sg, pl});
    else dropped.push_back(sg + "/" + pl + " (" + std::to_string(a) + " vs " + std::to_string(b) + " tokens)");
  }
  return out;
}

}  // namespace

Dataset make_sva(const Tokenizer& tok, const TaskOptions& opt) {
  const std::string task = "sva";
  check_n(task, opt);
  std::vector<std::string> dropped;
  auto people = sva_aligned_nouns(tok, kSvaPeople, dropped);
  auto nouns = people;
  for (const auto& p : sva_aligned_nouns(tok, kSvaThings, dropped)) nouns.push_back(p);
  const size_t total_nouns = kSvaPeople.size() + kSvaThings.size();
  if (nouns.size() < 10 || people.size() < 5)
    fail("task " + task, "only " + std::to_string(nouns.size()) + " of " + std::to_string(total_nouns) +
                             " noun pairs (" + std::to_string(people.size()) + " of " + std::to_string(kSvaPeople.size()) +
                             " people) have singular and plural forms with equal token counts (with a leading space) in "
                             "this tokenizer; need at least 10 (5 people); dropped: " + list_some(dropped));
  std::vector<WordPair> verbs;
  std::vector<std::string> not_single;
  for (const auto& [sg, pl] : kSvaVerbs) {
    const bool a = single_token(tok, " " + sg) >= 0, b = single_token(tok, " " + pl) >= 0;
    if (a && b) verbs.push_back({sg, pl});
    if (!a) not_single.push_back("\" " + sg + "\"");
    if (!b) not_single.push_back("\" " + pl + "\"");
  }
  if (verbs.size() < 2)
    fail("task " + task, "only " + std::to_string(verbs.size()) + " of " + std::to_string(kSvaVerbs.size()) +
                             " verb pairs have both forms as single tokens (with a leading space) in this tokenizer; "
                             "need at least 2; not single tokens: " + list_some(not_single));
  Rng rng(opt.seed);
  Dataset ds;
  ds.name = task;
  ds.description = "Subject-verb agreement: " + std::to_string(kSvaTemplates.size()) +
                   " templates (plain, prepositional and relative-clause distractor of the other number), "
                   "corrupted = the subject's number flipped, " + std::to_string(nouns.size()) + " noun pairs, " +
                   std::to_string(verbs.size()) + " verb pairs as answers, seed " + std::to_string(opt.seed);
  int64_t attempts = 0;
  std::string last_unaligned;
  while ((int64_t)ds.examples.size() < opt.n) {
    if (++attempts > opt.n * 50)
      fail("task " + task, "too many prompts whose clean and corrupted versions have different token counts (" +
                               std::to_string(attempts) + " attempts); last: " + last_unaligned);
    const bool singular = ds.examples.size() % 2 == 0;  // alternate singular / plural clean subjects
    // Every draw is made for every template, in a fixed order.
    const std::string& tpl = kSvaTemplates[pick(rng, kSvaTemplates.size())];
    const WordPair& subj = nouns[pick(rng, nouns.size())];
    const bool relative = tpl.find("[V]") != std::string::npos;
    const auto& pool = relative ? people : nouns;  // "that the key likes" would be odd
    size_t d;
    do d = pick(rng, pool.size());
    while (pool[d] == subj);
    const std::string& prep = kSvaPreps[pick(rng, kSvaPreps.size())];
    const WordPair& cverb = kSvaClauseVerbs[pick(rng, kSvaClauseVerbs.size())];
    // The distractor has the other number than the clean subject; the clause verb agrees with it.
    std::string s = replace_all(tpl, "[D]", singular ? pool[d].second : pool[d].first);
    s = replace_all(s, "[V]", singular ? cverb.second : cverb.first);
    s = replace_all(s, "[PREP]", prep);
    Example ex;
    ex.clean = replace_all(s, "[S]", singular ? subj.first : subj.second);
    ex.corrupted = replace_all(s, "[S]", singular ? subj.second : subj.first);
    if (tok.encode(ex.clean).size() != tok.encode(ex.corrupted).size()) {
      last_unaligned = "\"" + ex.clean + "\" vs \"" + ex.corrupted + "\"";
      continue;
    }
    for (const auto& [sg, pl] : verbs) {
      ex.correct.push_back(" " + (singular ? sg : pl));
      ex.incorrect.push_back(" " + (singular ? pl : sg));
    }
    ds.examples.push_back(std::move(ex));
  }
  return ds;
}

}  // namespace edgewise
