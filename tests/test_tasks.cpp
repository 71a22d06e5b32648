// Tasks, data and metrics (include/edgewise/tasks.h, metrics.h):
//  - generators: same seed -> same data, another seed -> other data; every answer a single token
//    and every pair token-aligned, for the GPT-2 vocabulary and the default model's tokenizer;
//  - the single-token decisions against HF `tokenizers` (tests/reference/tasks_golden.py encodes
//    every word-list literal of src/tasks/tasks.cpp);
//  - sva: balanced numbers, clean/corrupted differ only in the subject's number, the answers
//    flip with it; its kept vocabulary and prompt token ids against HF `tokenizers`;
//  - user data: JSONL `<predict>` and explicit answers, CSV (quoted fields, EAP-IG id columns),
//    bad lines reported as file:line (or skipped and counted);
//  - batches: BOS, padding, positions, the alignment error;
//  - metrics against torch.nn.functional (values and gradients of the batch means).
#include <gtest/gtest.h>
#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "edgewise/error.h"
#include "edgewise/gguf.h"
#include "edgewise/hf.h"
#include "edgewise/metrics.h"
#include "edgewise/safetensors.h"
#include "edgewise/tasks.h"
#include "test_helpers.h"

using namespace edgewise;

namespace {

const char* kFixture = "tasks_golden";

const Tokenizer& gpt2() {
  static Tokenizer t = [] {
    const std::string d = std::string(EW_SOURCE_DIR) + "/tests/data/gpt2-tokenizer";
    return Tokenizer::from_vocab_merges(d + "/encoder.json", d + "/vocab.bpe");
  }();
  return t;
}

// The default model's tokenizer (from its GGUF), or nullptr when the model is not installed.
const Tokenizer* smollm() {
  static std::unique_ptr<Tokenizer> t = []() -> std::unique_ptr<Tokenizer> {
    const std::string p = default_model_path();
    if (!ewtest::exists(p)) return nullptr;
    return std::make_unique<Tokenizer>(Tokenizer::from_gguf(GgufFile::open(p)));
  }();
  return t.get();
}

std::vector<std::pair<std::string, const Tokenizer*>> tokenizers() {
  std::vector<std::pair<std::string, const Tokenizer*>> v = {{"gpt2", &gpt2()}};
  if (smollm()) v.push_back({"smollm", smollm()});
  return v;
}

bool same(const Example& a, const Example& b) {
  return a.clean == b.clean && a.corrupted == b.corrupted && a.correct == b.correct && a.incorrect == b.incorrect;
}

std::string expect_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an edgewise::Error";
  return "";
}

std::string write_temp(const std::string& name, const std::string& text) {
  auto dir = std::filesystem::temp_directory_path() / "edgewise_test_tasks";
  std::filesystem::create_directories(dir);
  auto p = (dir / name).string();
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

at::Tensor load_st(const SafetensorsFile& f, const std::string& name) {
  const StTensor* t = f.find(name);
  if (!t) {
    ADD_FAILURE() << "golden tensor missing: " << name;
    return at::Tensor();
  }
  at::ScalarType st = t->dtype == StDType::F64 ? at::kDouble : t->dtype == StDType::I64 ? at::kLong : at::kFloat;
  return at::from_blob(const_cast<uint8_t*>(t->data), t->shape, at::TensorOptions().dtype(st)).clone();
}

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

}  // namespace

// ---------------------------------------------------------------- generators

TEST(Tasks, SameSeedSameDataOtherSeedOtherData) {
  for (const auto& [tname, tok] : tokenizers()) {
    for (const auto& task : task_names()) {
      SCOPED_TRACE(tname + " " + task);
      TaskOptions o;
      o.n = 40;
      o.seed = 7;
      Dataset a = make_task(task, *tok, o), b = make_task(task, *tok, o);
      o.seed = 8;
      Dataset c = make_task(task, *tok, o);
      ASSERT_EQ(a.examples.size(), 40u);
      ASSERT_EQ(c.examples.size(), 40u);
      int differ = 0;
      for (size_t i = 0; i < a.examples.size(); ++i) {
        EXPECT_TRUE(same(a.examples[i], b.examples[i])) << "example " << i;
        differ += !same(a.examples[i], c.examples[i]);
      }
      // Each example draws several random choices from pools of 5+ items: with another seed
      // more than half of 40 examples differ (an equal example has probability < 1/5 each).
      EXPECT_GT(differ, 20) << "seed 8 vs seed 7";
    }
  }
}

TEST(Tasks, AnswersAreSingleTokensAndPairsAligned) {
  for (const auto& [tname, tok] : tokenizers()) {
    for (const auto& task : task_names()) {
      SCOPED_TRACE(tname + " " + task);
      TaskOptions o;
      o.n = 100;
      o.seed = 3;
      Dataset ds = make_task(task, *tok, o);
      for (const auto& ex : ds.examples) {
        ASSERT_FALSE(ex.correct.empty());
        for (const auto* set : {&ex.correct, &ex.incorrect})
          for (const auto& a : *set) EXPECT_EQ(tok->encode(a).size(), 1u) << "answer \"" << a << "\"";
        for (const auto& a : ex.correct)
          EXPECT_EQ(std::count(ex.incorrect.begin(), ex.incorrect.end(), a), 0) << a << " in both sets";
        EXPECT_NE(ex.clean, ex.corrupted);
      }
      BatchOptions bo;
      bo.require_aligned = true;
      Batch b = make_batch(ds, *tok, bo);
      EXPECT_TRUE(b.aligned);
      EXPECT_EQ(b.multi_token_answers, 0);
      EXPECT_EQ(b.size(), 100);
    }
  }
}

TEST(Tasks, TaskSpecificStructure) {
  TaskOptions o;
  o.n = 60;
  o.seed = 11;
  // IOI: the correct answer is the indirect object (mentioned once), the incorrect one the
  // subject (mentioned twice); the ABC corruption mentions neither.
  for (const auto& ex : make_ioi(gpt2(), o).examples) {
    auto count = [](const std::string& s, const std::string& w) {
      int n = 0;
      for (size_t p = s.find(w + " "); p != std::string::npos; p = s.find(w + " ", p + 1)) n++;
      for (size_t p = s.find(w + ","); p != std::string::npos; p = s.find(w + ",", p + 1)) n++;
      for (size_t p = s.find(w + "."); p != std::string::npos; p = s.find(w + ".", p + 1)) n++;
      return n;
    };
    const std::string io = ex.correct[0].substr(1), s = ex.incorrect[0].substr(1);
    EXPECT_EQ(count(" " + ex.clean + " ", " " + io), 1) << ex.clean;
    EXPECT_EQ(count(" " + ex.clean + " ", " " + s), 2) << ex.clean;
    EXPECT_EQ(count(" " + ex.corrupted + " ", " " + io), 0) << ex.corrupted;
    EXPECT_EQ(count(" " + ex.corrupted + " ", " " + s), 0) << ex.corrupted;
  }
  // Greater-Than with GPT-2: two-digit answers, correct = years above the start year.
  for (const auto& ex : make_greater_than(gpt2(), o).examples) {
    const size_t p = ex.clean.find("year ") + 5;
    const int yy = std::stoi(ex.clean.substr(p + 2, 2));
    EXPECT_EQ(ex.correct.size() + ex.incorrect.size(), 100u);
    EXPECT_EQ((int)ex.correct.size(), 99 - yy) << ex.clean;
    EXPECT_NE(ex.corrupted.find(ex.clean.substr(p, 2) + "01 to"), std::string::npos) << ex.corrupted;
  }
  // Greater-Than with SmolLM2 (digits split): the answer is the tens digit of the end year.
  if (smollm()) {
    for (const auto& ex : make_greater_than(*smollm(), o).examples) {
      const size_t p = ex.clean.find("year ") + 5;
      const int tens = ex.clean[p + 2] - '0';
      EXPECT_EQ((int)ex.correct.size(), 9 - tens) << ex.clean;
      EXPECT_EQ((int)ex.incorrect.size(), tens) << ex.clean;
    }
  }
  // Induction: the clean prompt is a sequence followed by its first L-1 tokens again.
  for (const auto& ex : make_induction(gpt2(), o).examples) {
    auto ids = gpt2().encode(ex.clean);
    ASSERT_EQ(ids.size(), 19u);
    for (int k = 0; k < 9; ++k) EXPECT_EQ(ids[10 + k], ids[k]);
    EXPECT_EQ(gpt2().encode(ex.correct[0])[0], ids[9]);
  }
  // Gendered pronouns: half " he", half " she".
  int he = 0;
  for (const auto& ex : make_gendered_pronouns(gpt2(), o).examples) he += ex.correct[0] == " he";
  EXPECT_EQ(he, 30);
  // Docstring: the answer is a def parameter not yet documented.
  for (const auto& ex : make_docstring(gpt2(), o).examples) {
    const std::string def = ex.clean.substr(0, ex.clean.find("):"));
    EXPECT_NE(def.find("," + ex.correct[0] + ","), std::string::npos) << def;
    EXPECT_EQ(ex.clean.find(":param" + ex.correct[0] + ":"), std::string::npos);
    EXPECT_EQ(ex.incorrect.size(), 5u);
  }
}

TEST(Tasks, SingleTokenDecisionsMatchHfTokenizers) {
  const std::string path = ewtest::golden(kFixture, "tokens.json");
  if (!ewtest::exists(path)) GTEST_SKIP() << "golden files missing (run ctest to create them)";
  auto j = nlohmann::json::parse(std::ifstream(path));
  std::vector<std::pair<std::string, const Tokenizer*>> toks = {{"gpt2", &gpt2()}};
  if (j.contains("smollm") && smollm()) toks.push_back({"smollm", smollm()});
  for (const auto& [name, tok] : toks) {
    int checked = 0, single = 0;
    for (auto it = j[name].begin(); it != j[name].end(); ++it) {
      auto ref = it.value().get<std::vector<int32_t>>();
      EXPECT_EQ(tok->encode(it.key()), ref) << name << " \"" << it.key() << "\"";
      EXPECT_EQ(single_token(*tok, it.key()), ref.size() == 1 ? ref[0] : -1) << name << " \"" << it.key() << "\"";
      checked++;
      single += ref.size() == 1;
    }
    std::printf("%s: %d probe strings, %d single tokens\n", name.c_str(), checked, single);
    EXPECT_GT(checked, 300);
  }
}

TEST(Tasks, TooFewSingleTokenNamesFails) {
  // A tokenizer from GPT-2's vocabulary without merges: every name is several tokens.
  const std::string d = std::string(EW_SOURCE_DIR) + "/tests/data/gpt2-tokenizer";
  std::string merges = write_temp("no_merges.txt", "#version: 0.2\n");
  Tokenizer t = Tokenizer::from_vocab_merges(d + "/encoder.json", merges);
  std::string msg = expect_error([&] { make_ioi(t); });
  EXPECT_NE(msg.find("task ioi"), std::string::npos) << msg;
  EXPECT_NE(msg.find("names"), std::string::npos) << msg;
  msg = expect_error([&] { make_task("nope", gpt2()); });
  EXPECT_NE(msg.find("ioi, greater-than"), std::string::npos) << msg;
  EXPECT_NE(msg.find("sva"), std::string::npos) << msg;
  // sva without merges: regular plurals are one character longer, so most noun pairs are dropped,
  // and the message names some of them.
  msg = expect_error([&] { make_sva(t); });
  std::printf("%s\n", msg.c_str());
  EXPECT_NE(msg.find("task sva"), std::string::npos) << msg;
  EXPECT_NE(msg.find("noun pairs"), std::string::npos) << msg;
  EXPECT_NE(msg.find("author/authors (7 vs 8 tokens)"), std::string::npos) << msg;
}

namespace {

// The words of a prompt, split on spaces.
std::vector<std::string> words_of(const std::string& s) {
  std::vector<std::string> w;
  size_t p = 0;
  while (p <= s.size()) {
    size_t q = s.find(' ', p);
    if (q == std::string::npos) q = s.size();
    w.push_back(s.substr(p, q - p));
    p = q + 1;
  }
  return w;
}

}  // namespace

TEST(Tasks, SvaNumbersBalancedAndAnswersFlip) {
  for (const auto& [tname, tok] : tokenizers()) {
    SCOPED_TRACE(tname);
    TaskOptions o;
    o.n = 200;
    o.seed = 5;
    Dataset ds = make_sva(*tok, o);
    ASSERT_EQ(ds.examples.size(), 200u);
    // The answers of a subject form, as seen in the clean prompts.
    std::map<std::string, std::vector<std::string>> answers_of;
    int singular = 0, templates[3] = {0, 0, 0};
    for (size_t i = 0; i < ds.examples.size(); ++i) {
      const Example& ex = ds.examples[i];
      SCOPED_TRACE(ex.clean);
      // Clean and corrupted differ in exactly one word, the subject (the 2nd word, after "The").
      auto wc = words_of(ex.clean), wk = words_of(ex.corrupted);
      ASSERT_EQ(wc.size(), wk.size()) << ex.corrupted;
      EXPECT_EQ(wc[0], "The");
      for (size_t k = 0; k < wc.size(); ++k) EXPECT_EQ(wc[k] == wk[k], k != 1) << "word " << k << ": " << ex.corrupted;
      // Answers: pairs (correct[k], incorrect[k]) of one verb, the same verbs in every example.
      ASSERT_EQ(ex.correct.size(), ex.incorrect.size());
      ASSERT_GE(ex.correct.size(), 2u);
      const bool sg = std::find(ex.correct.begin(), ex.correct.end(), " is") != ex.correct.end();
      EXPECT_EQ(sg, i % 2 == 0) << "singular and plural subjects alternate";
      EXPECT_NE(std::find(ex.incorrect.begin(), ex.incorrect.end(), sg ? " are" : " is"), ex.incorrect.end());
      singular += sg;
      templates[ex.clean.find(" that the ") != std::string::npos ? 2 : wc.size() > 2 ? 1 : 0]++;
      auto [it, fresh] = answers_of.insert({wc[1], ex.correct});
      if (!fresh) {
        EXPECT_EQ(it->second, ex.correct) << "subject \"" << wc[1] << "\" got two answer sets";
      }
    }
    EXPECT_EQ(singular, 100);
    for (int t = 0; t < 3; ++t) EXPECT_GT(templates[t], 40) << "template " << t;  // ~67 each
    // The correct answer flips: the corrupted subject, seen as a clean subject elsewhere, has
    // this example's incorrect answers as its correct ones.
    int checked = 0;
    for (const Example& ex : ds.examples) {
      auto it = answers_of.find(words_of(ex.corrupted)[1]);
      if (it == answers_of.end()) continue;
      EXPECT_EQ(it->second, ex.incorrect) << ex.clean << " / " << ex.corrupted;
      checked++;
    }
    EXPECT_GT(checked, 120) << "too few corrupted subjects also seen as clean subjects";
  }
}

TEST(Tasks, SvaMatchesHfTokenizers) {
  const std::string path = ewtest::golden(kFixture, "tokens.json");
  if (!ewtest::exists(path)) GTEST_SKIP() << "golden files missing (run ctest to create them)";
  auto j = nlohmann::json::parse(std::ifstream(path));
  ASSERT_TRUE(j.contains("sva"));
  for (const auto& [name, tok] : tokenizers()) {
    if (!j["sva"].contains(name)) continue;
    SCOPED_TRACE(name);
    const auto& ref = j["sva"][name];
    // Every prompt and answer as HF `tokenizers` encodes it; HF's prompt pairs are aligned.
    for (auto it = ref["ids"].begin(); it != ref["ids"].end(); ++it)
      EXPECT_EQ(tok->encode(it.key()), it.value().get<std::vector<int32_t>>()) << "\"" << it.key() << "\"";
    int pairs = 0;
    for (const auto& p : ref["pairs"]) {
      const std::string c = p[0], k = p[1];
      EXPECT_EQ(ref["ids"][c].size(), ref["ids"][k].size()) << c << " / " << k;
      EXPECT_EQ(tok->encode(c).size(), tok->encode(k).size()) << c << " / " << k;
      pairs++;
    }
    // The generator keeps the same vocabulary as the reference: over 2000 examples every kept
    // noun pair is a subject (~34 times each) and the answers are exactly the kept verb pairs.
    using Pair = std::pair<std::string, std::string>;
    std::set<Pair> ref_nouns, ref_people, ref_verbs, nouns, distractors;
    // (a braced {p[0], p[1]} would pick set::insert(initializer_list) and convert each json to a pair)
    auto pair_of = [](const nlohmann::json& p) { return Pair{p[0].get<std::string>(), p[1].get<std::string>()}; };
    for (const auto& p : ref["nouns"]) ref_nouns.insert(pair_of(p));
    for (const auto& p : ref["people"]) ref_people.insert(pair_of(p));
    std::vector<Pair> verbs_ordered;  // (" is", " are"), ... in the order of the answers
    for (const auto& p : ref["verbs"]) {
      ref_verbs.insert(pair_of(p));
      verbs_ordered.push_back({" " + pair_of(p).first, " " + pair_of(p).second});
    }
    TaskOptions o;
    o.n = 2000;
    o.seed = 9;
    for (const Example& ex : make_sva(*tok, o).examples) {
      const bool sg = ex.correct[0] == verbs_ordered[0].first;
      const std::string a = words_of(ex.clean)[1], b = words_of(ex.corrupted)[1];
      const Pair subj = sg ? Pair{a, b} : Pair{b, a};
      EXPECT_TRUE(ref_nouns.count(subj)) << "subject pair " << a << "/" << b;
      nouns.insert(subj);
      ASSERT_EQ(ex.correct.size(), verbs_ordered.size());
      for (size_t k = 0; k < verbs_ordered.size(); ++k) {
        EXPECT_EQ(ex.correct[k], sg ? verbs_ordered[k].first : verbs_ordered[k].second);
        EXPECT_EQ(ex.incorrect[k], sg ? verbs_ordered[k].second : verbs_ordered[k].first);
      }
      // The distractor (last word but one in "... that the [D] [V]", last word otherwise) has
      // the other number.
      auto w = words_of(ex.clean);
      const bool relative = ex.clean.find(" that the ") != std::string::npos;
      if (w.size() > 2) {
        const std::string d = w[w.size() - (relative ? 2 : 1)];
        bool found = false;
        for (const auto& p : relative ? ref_people : ref_nouns)
          if ((sg ? p.second : p.first) == d) found = true;
        EXPECT_TRUE(found) << "distractor \"" << d << "\" in \"" << ex.clean << "\"";
      }
    }
    EXPECT_EQ(nouns, ref_nouns);
    std::printf("%s: %d HF prompt pairs, %zu noun pairs, %zu verb pairs\n", name.c_str(), pairs, ref_nouns.size(),
                ref_verbs.size());
    EXPECT_GT(pairs, 300);
  }
}

// ---------------------------------------------------------------- user data

TEST(Data, JsonlPredictAndExplicitAnswers) {
  const std::string p = write_temp("good.jsonl",
      "{\"clean\": \"When Mary and John went out, John gave a drink to <predict>Mary</predict>\", "
      "\"corrupted\": \"When Anna and Paul went out, Mark gave a drink to <predict>Anna</predict>\", \"split\": \"train\"}\n"
      "\n"
      "{\"clean\": \"So Tom is nice, isn't\", \"corrupted\": \"So Ann is nice, isn't\", "
      "\"correct\": \" he\", \"incorrect\": [\" she\", \" it\"], \"split\": \"validation\"}\r\n");
  Dataset ds = load_dataset(p);
  ASSERT_EQ(ds.examples.size(), 2u);
  const Example& a = ds.examples[0];
  EXPECT_EQ(a.clean, "When Mary and John went out, John gave a drink to");
  EXPECT_EQ(a.corrupted, "When Anna and Paul went out, Mark gave a drink to");
  EXPECT_EQ(a.correct, std::vector<std::string>{" Mary"});
  EXPECT_EQ(a.incorrect, std::vector<std::string>{" Anna"});
  EXPECT_EQ(a.split, "train");
  EXPECT_EQ(a.line, 1);
  const Example& b = ds.examples[1];
  EXPECT_EQ(b.line, 3);
  EXPECT_EQ(b.incorrect, (std::vector<std::string>{" she", " it"}));
  EXPECT_EQ(ds.select_split("train").examples.size(), 1u);
  EXPECT_EQ(ds.select_split("validation").examples[0].line, 3);
}

TEST(Data, BadJsonlLinesNamed) {
  const std::string good = "{\"clean\": \"a <predict>b</predict>\", \"corrupted\": \"c\"}\n";
  struct Case {
    std::string line, expect;
  };
  std::vector<Case> cases = {
      {"{\"clean\": \"a\", \"corrupted\": ", "not valid JSON"},
      {"{\"clean\": \"a <predict>b</predict>\"}", "missing string field \"corrupted\""},
      {"{\"clean\": \"a b\", \"corrupted\": \"c\"}", "no answer"},
      {"{\"clean\": \"a <predict>b\", \"corrupted\": \"c\"}", "without </predict>"},
      {"{\"clean\": \"a <predict>b</predict>\", \"corrupted\": \"c\", \"split\": \"test\"}", "split must be"},
      {"{\"clean\": \"a\", \"corrupted\": \"c\", \"correct\": 3}", "\"correct\" must be a string or a list"},
      {"[1, 2]", "expected a JSON object"},
  };
  std::string all = good;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string p = write_temp("bad" + std::to_string(i) + ".jsonl", good + good + cases[i].line + "\n" + good);
    std::string msg = expect_error([&] { load_jsonl(p); });
    EXPECT_NE(msg.find(p + ":3:"), std::string::npos) << msg;
    EXPECT_NE(msg.find(cases[i].expect), std::string::npos) << msg;
    all += cases[i].line + "\n";
  }
  // skip_bad: every bad line is counted and explained, the good ones kept.
  const std::string p = write_temp("bad_all.jsonl", all + good);
  LoadDataOptions o;
  o.skip_bad = true;
  Dataset ds = load_jsonl(p, o);
  EXPECT_EQ(ds.examples.size(), 2u);
  EXPECT_EQ(ds.skipped, (int64_t)cases.size());
  ASSERT_EQ(ds.skip_notes.size(), cases.size());
  EXPECT_NE(ds.skip_notes[0].find(p + ":2:"), std::string::npos) << ds.skip_notes[0];
  EXPECT_EQ(ds.examples[1].line, (int64_t)cases.size() + 2);
}

TEST(Data, CsvColumnsQuotingAndBadLines) {
  const std::string p = write_temp("good.csv",
      "clean,corrupted,correct,incorrect,split\n"
      "\"Then, Mary and John went\nhome. John gave it to\",\"Then, A and B went\nhome. C gave it to\", Mary, John,train\n"
      "\"He said \"\"hi\"\", then\",\"She said \"\"hi\"\", then\", he,,\n");
  Dataset ds = load_csv(p);
  ASSERT_EQ(ds.examples.size(), 2u);
  EXPECT_EQ(ds.examples[0].clean, "Then, Mary and John went\nhome. John gave it to");
  EXPECT_EQ(ds.examples[0].correct, std::vector<std::string>{" Mary"});
  EXPECT_EQ(ds.examples[0].incorrect, std::vector<std::string>{" John"});
  EXPECT_EQ(ds.examples[0].split, "train");
  EXPECT_EQ(ds.examples[1].line, 5);  // the first record spans lines 2-4 (two quoted newlines)
  EXPECT_EQ(ds.examples[1].clean, "He said \"hi\", then");
  EXPECT_TRUE(ds.examples[1].incorrect.empty());

  // EAP-IG columns: token ids.
  const std::string q = write_temp("ids.csv", "clean,corrupted,correct_idx,incorrect_idx\na b,c d,5,7\n");
  Dataset di = load_csv(q);
  EXPECT_EQ(di.examples[0].correct_ids, std::vector<int32_t>{5});
  EXPECT_EQ(di.examples[0].incorrect_ids, std::vector<int32_t>{7});

  const std::string bad = write_temp("bad.csv", "clean,corrupted,label\na,b,c\nd,e\nf,g,h\ni,,j\n");
  std::string msg = expect_error([&] { load_csv(bad); });
  EXPECT_NE(msg.find(bad + ":3:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected 3 fields"), std::string::npos) << msg;
  LoadDataOptions o;
  o.skip_bad = true;
  Dataset ds2 = load_csv(bad, o);
  EXPECT_EQ(ds2.examples.size(), 2u);
  EXPECT_EQ(ds2.skipped, 2);
  EXPECT_NE(ds2.skip_notes[1].find(bad + ":5:"), std::string::npos) << ds2.skip_notes[1];

  msg = expect_error([&] { load_csv(write_temp("nohdr.csv", "clean,label\na,b\n")); });
  EXPECT_NE(msg.find(":1:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("corrupted"), std::string::npos) << msg;
  msg = expect_error([&] { load_csv(write_temp("open.csv", "clean,corrupted,label\n\"a,b,c\n")); });
  EXPECT_NE(msg.find(":2:"), std::string::npos) << msg;
}

// ---------------------------------------------------------------- batches

TEST(Batch, PaddingPositionsBosAndAlignment) {
  Dataset ds;
  ds.name = "unit";
  Example a;
  a.clean = "The cat sat on the";
  a.corrupted = "The dog sat on the";
  a.correct = {" mat"};
  a.incorrect = {" rug", " floor"};
  Example b;
  b.clean = "Hello";
  b.corrupted = "Hi";
  b.correct = {" world"};
  b.line = 9;
  ds.examples = {a, b};
  const Tokenizer& tok = gpt2();
  Batch bt = make_batch(ds, tok);
  const auto ca = tok.encode(a.clean), cb = tok.encode(b.clean);
  ASSERT_EQ(bt.clean.sizes(), (at::IntArrayRef{2, (int64_t)ca.size()}));
  for (size_t t = 0; t < ca.size(); ++t) EXPECT_EQ(bt.clean[0][t].item<int64_t>(), ca[t]);
  EXPECT_EQ(bt.clean[1][0].item<int64_t>(), cb[0]);
  EXPECT_EQ(bt.clean[1][1].item<int64_t>(), *tok.eos_id());  // right padding with EOS
  EXPECT_EQ(bt.clean_pos[0].item<int64_t>(), (int64_t)ca.size() - 1);
  EXPECT_EQ(bt.clean_pos[1].item<int64_t>(), (int64_t)cb.size() - 1);
  EXPECT_EQ(bt.correct[0][0].item<int64_t>(), tok.encode(" mat")[0]);
  EXPECT_EQ(bt.incorrect[0][1].item<int64_t>(), tok.encode(" floor")[0]);
  EXPECT_EQ(bt.incorrect_mask[1].sum().item<float>(), 0.f);
  EXPECT_TRUE(bt.aligned);  // "Hello" and "Hi" are one token each

  ds.examples[1].corrupted = "Hi there";
  Batch bu = make_batch(ds, tok);
  EXPECT_FALSE(bu.aligned);
  BatchOptions o;
  o.require_aligned = true;
  std::string msg = expect_error([&] { make_batch(ds, tok, o); });
  EXPECT_NE(msg.find("example 1 (line 9)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1 clean vs 2 corrupted"), std::string::npos) << msg;

  // BOS prepended when the tokenizer asks for it.
  const std::string d = std::string(EW_SOURCE_DIR) + "/tests/data/gpt2-tokenizer";
  Tokenizer tb = Tokenizer::from_vocab_merges(d + "/encoder.json", d + "/vocab.bpe");
  tb.set_bos_id(50256);
  tb.set_add_bos(true);
  Batch bb = make_batch(ds, tb);
  EXPECT_EQ(bb.clean[0][0].item<int64_t>(), 50256);
  EXPECT_EQ(bb.clean_len[0].item<int64_t>(), (int64_t)ca.size() + 1);
  EXPECT_EQ(bb.correct[0][0].item<int64_t>(), tok.encode(" mat")[0]);  // answers never get a BOS

  ds.examples[0].correct = {" matterhorn"};
  EXPECT_EQ(make_batch(ds, tok).multi_token_answers, 1);
}

// ---------------------------------------------------------------- metrics

TEST(Metrics, MatchTorchFunctional) {
  const std::string path = ewtest::golden(kFixture, "metrics.safetensors");
  if (!ewtest::exists(path)) GTEST_SKIP() << "golden files missing (run ctest to create them)";
  auto f = SafetensorsFile::open(path);
  at::Tensor patched = load_st(f, "patched"), clean = load_st(f, "clean");
  Batch b;
  b.correct = load_st(f, "correct");
  b.incorrect = load_st(f, "incorrect");
  b.correct_mask = load_st(f, "correct_mask");
  b.incorrect_mask = load_st(f, "incorrect_mask");
  b.clean = at::zeros({patched.size(0), 1}, at::kLong);
  // float32 metrics of float32 logits (|x| < 15) against a float64 reference: rounding of the
  // softmax / log-sum-exp stays below 1e-6 relative; 2e-6 absolute leaves room for the sums.
  const double tol = 2e-6;
  struct M {
    Metric m;
    const char* name;
  };
  for (M m : {M{Metric::LogitDiff, "logit_diff"}, M{Metric::ProbDiff, "prob_diff"}, M{Metric::KL, "kl"},
              M{Metric::MSE, "mse"}}) {
    at::Tensor x = patched.clone().requires_grad_(true);
    at::Tensor per = metric_per_example(m.m, x, b, clean);
    const double d = max_abs(per, load_st(f, m.name));
    std::printf("%-10s max |diff| %.3g\n", m.name, d);
    // MSE's values are squares of logit differences (up to ~100 here): the same float32 relative
    // rounding, scaled by the largest value.
    const double scale = m.m == Metric::MSE ? std::max(1.0, load_st(f, m.name).abs().max().item<double>()) : 1.0;
    EXPECT_LT(d, tol * scale) << m.name;
    at::Tensor mean = metric_mean(m.m, x, b, clean);
    EXPECT_EQ(mean.dim(), 0);
    mean.backward();
    const double dg = max_abs(x.grad(), load_st(f, std::string("grad_") + m.name));
    std::printf("%-10s grad max |diff| %.3g\n", m.name, dg);
    EXPECT_LT(dg, tol) << "gradient of " << m.name;
  }
  at::Tensor acc = accuracy_per_example(patched, b);
  EXPECT_EQ(max_abs(acc, load_st(f, "accuracy")), 0.0);
  EXPECT_GE(acc.sum().item<float>(), 2.f);  // the reference plants two hits
  // KL of a run against itself is zero.
  EXPECT_LT(kl_per_example(clean, clean).abs().max().item<float>(), 1e-6);
  // logits_at picks the rows at the positions.
  at::Tensor full = at::randn({2, 3, 4});
  at::Tensor pos = at::tensor({2, 0}, at::kLong);
  EXPECT_TRUE(at::equal(logits_at(full, pos)[0], full[0][2]));
  EXPECT_TRUE(at::equal(logits_at(full, pos)[1], full[1][0]));
}

TEST(Metrics, FaithfulnessAndNames) {
  EXPECT_DOUBLE_EQ(normalized_faithfulness(2.0, 1.0, 5.0), 0.25);
  EXPECT_DOUBLE_EQ(normalized_faithfulness(5.0, 1.0, 5.0), 1.0);
  EXPECT_DOUBLE_EQ(normalized_faithfulness(1.0, 1.0, 5.0), 0.0);
  EXPECT_TRUE(std::isnan(normalized_faithfulness(1.0, 3.0, 3.0)));
  for (Metric m : {Metric::LogitDiff, Metric::ProbDiff, Metric::KL, Metric::Accuracy, Metric::MSE})
    EXPECT_EQ(parse_metric(metric_name(m)), m);
  EXPECT_FALSE(metric_higher_is_better(Metric::MSE));
  EXPECT_TRUE(metric_needs_clean_logits(Metric::MSE));
  std::string msg = expect_error([] { parse_metric("f1"); });
  EXPECT_NE(msg.find("logit-diff"), std::string::npos) << msg;
}

// ---------------------------------------------------------------- answer checks

// Answers checked with the tokenizer: ids outside it, a bare-space first token, the same first
// token for a correct and an incorrect answer (GPT-2 ids by HF `tokenizers`: " 1732" -> [" 17",
// "32"], " 1745" -> [" 17", "45"], "  Paris" -> [" ", " Paris"]). Every bad example is reported
// in one error; skip_bad removes and counts them; multi-token answers become one warning.
TEST(Data, AnswerChecksReportEveryBadExample) {
  const Tokenizer& tok = gpt2();
  Dataset ds;
  ds.name = "unit";
  auto ex = [](std::vector<std::string> c, std::vector<std::string> w, int64_t line) {
    Example e;
    e.clean = "a";
    e.corrupted = "b";
    e.correct = std::move(c);
    e.incorrect = std::move(w);
    e.line = line;
    return e;
  };
  ds.examples = {ex({" Paris"}, {" Rome"}, 1), ex({" 1732"}, {" 1745"}, 2), ex({"  Paris"}, {" Rome"}, 3),
                 ex({" Mariana"}, {" John"}, 4), ex({" "}, {}, 5)};
  Example ids = ex({}, {}, 6);
  ids.correct_ids = {60000};  // GPT-2 has 50257 ids
  ds.examples.push_back(ids);
  std::string msg = expect_error([&] {
    Dataset d = ds;
    check_answers(d, tok);
  });
  EXPECT_NE(msg.find("4 bad examples"), std::string::npos) << msg;
  for (const char* want : {"unit:2: correct answer \" 1732\" and incorrect answer \" 1745\" both begin with token 1596",
                           "unit:3: correct answer \"  Paris\" begins with token 220", "unit:5: correct answer \" \" is empty",
                           "unit:6: correct answer id 60000 is outside the tokenizer's vocabulary"})
    EXPECT_NE(msg.find(want), std::string::npos) << want << " not in " << msg;
  LoadDataOptions skip;
  skip.skip_bad = true;
  Dataset d = ds;
  check_answers(d, tok, skip);
  ASSERT_EQ(d.examples.size(), 2u);
  EXPECT_EQ(d.examples[1].line, 4);
  EXPECT_EQ(d.skipped, 4);
  ASSERT_EQ(d.warnings.size(), 1u);
  EXPECT_NE(d.warnings[0].find("1 of 2 examples have answers of several tokens (1 answers; unit:4)"), std::string::npos)
      << d.warnings[0];

  // Explicit ids: the same id correct and incorrect.
  const std::string p = write_temp("same_ids.csv", "clean,corrupted,correct_idx,incorrect_idx\na b,c d,5,5\ne,f,5,7\n");
  msg = expect_error([&] { load_dataset_checked(p, tok, -1); });
  EXPECT_NE(msg.find(p + ":2: correct answer id 5 and incorrect answer id 5 both begin with token 5"), std::string::npos)
      << msg;
  EXPECT_EQ(load_dataset_checked(p, tok, -1, skip).examples.size(), 1u);
}

// Every built-in task passes the answer checks on GPT-2's tokenizer (their answers are single
// tokens chosen from it), so load_task's check never refuses a generated dataset.
TEST(Data, BuiltinTasksPassAnswerChecks) {
  for (const std::string& name : task_names()) {
    SCOPED_TRACE(name);
    Dataset ds = load_task(name, gpt2(), 50, 3);
    EXPECT_EQ(ds.examples.size(), 50u);
    EXPECT_EQ(ds.skipped, 0);
  }
}

// ---------------------------------------------------------------- fuzz regressions
// Inputs that crashed fuzz/fuzz_dataset.cpp (fuzz/regressions/fuzz_dataset/, replayed by
// `scripts/fuzz.sh smoke`; docs/FUZZING.md).

// The crash input: a CSV answer that is not UTF-8 ("\xFA") made check_answers' quoting throw
// nlohmann's type_error. CSV text must be UTF-8 now (JSONL's parser already demands it); and the
// messages quote a token holding part of a character (GPT-2's first token of "丫" is the bytes
// E4 B8) with U+FFFD instead of throwing.
TEST(DataFuzz, CsvNotUtf8AndPartialCharacterTokens) {
  const std::string crash("clean,corrupted,correct,\nn,\0,\xfa,", 31);
  std::string msg = expect_error([&] { parse_csv("fuzz.csv", crash); });
  EXPECT_NE(msg.find("fuzz.csv:2: column correct is not valid UTF-8 (byte 0xFA at offset 0 of the field)"),
            std::string::npos)
      << msg;
  LoadDataOptions skip;
  skip.skip_bad = true;
  const Dataset ok = parse_csv("f.csv", "clean,corrupted,correct\na b,c d,\xc3\xa9\nx,y,\xe9\n", skip);
  ASSERT_EQ(ok.examples.size(), 1u);
  EXPECT_EQ(ok.skipped, 1);
  EXPECT_NE(ok.skip_notes[0].find("f.csv:3: column correct is not valid UTF-8 (byte 0xE9"), std::string::npos)
      << ok.skip_notes[0];

  Dataset ds = parse_jsonl("unit", "{\"clean\": \"a\", \"corrupted\": \"b\", \"correct\": \"\xe4\xb8\xab\", "
                                   "\"incorrect\": \"\xe4\xb8\xbc\"}\n");
  msg = expect_error([&] { check_answers(ds, gpt2()); });
  EXPECT_NE(msg.find("unit:1: correct answer \"\xe4\xb8\xab\" and incorrect answer \"\xe4\xb8\xbc\" both begin with "
                     "token 10310 \"\xef\xbf\xbd\""),
            std::string::npos)
      << msg;
}

// The crash input "4e454": nlohmann reports a number too large for a double as out_of_range,
// not parse_error, and it escaped the JSONL reader instead of becoming a bad line.
TEST(DataFuzz, JsonlNumberOverflowIsABadLine) {
  std::string msg = expect_error([&] { parse_jsonl("fuzz.jsonl", "4e454"); });
  EXPECT_NE(msg.find("fuzz.jsonl:1: not valid JSON"), std::string::npos) << msg;
  LoadDataOptions skip;
  skip.skip_bad = true;
  const Dataset ds = parse_jsonl("fuzz.jsonl", "{\"clean\": \"a <predict>b</predict>\", \"corrupted\": \"c\", \"n\": 1e999}\n"
                                               "{\"clean\": \"a <predict>b</predict>\", \"corrupted\": \"c\"}\n", skip);
  EXPECT_EQ(ds.examples.size(), 1u);
  EXPECT_EQ(ds.skipped, 1);
}
