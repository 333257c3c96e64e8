// Runs the policy fuzz entry briefly: the seed policies in testdata/, then seeded random
// mutations of them (byte flips, inserts of YAML punctuation, splices, truncations). A
// crash, an escaped exception or a sanitizer report fails the test. Deterministic: the
// generator is seeded.
#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int FuzzOne(const std::string& input) {
  return LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

std::string Mutate(std::string s, const std::vector<std::string>& corpus, std::mt19937& rng) {
  static const std::string kTokens[] = {
      ":", "-", "[", "]", "{", "}", "\n", "  ", "*", "&a", "*a", "!!map", "'", "\"", "#",
      "tcp/", "0-65535", "any", "services:", "depends_on:", "- service: a", "ports: [", "\t",
      "version: 1\n", "select:", "names:", "labels:", "~", "|", ">", "%YAML 1.2\n---\n"};
  const int rounds = 1 + rng() % 4;
  for (int r = 0; r < rounds; ++r) {
    const size_t at = s.empty() ? 0 : rng() % s.size();
    switch (rng() % 5) {
      case 0:
        if (!s.empty()) s[at] = static_cast<char>(rng());
        break;
      case 1:
        s.insert(at, kTokens[rng() % std::size(kTokens)]);
        break;
      case 2:
        if (!s.empty()) s.erase(at, 1 + rng() % 8);
        break;
      case 3: {
        const std::string& other = corpus[rng() % corpus.size()];
        if (!other.empty()) s.insert(at, other.substr(rng() % other.size(), rng() % 64));
        break;
      }
      case 4:
        s.resize(at);
        break;
    }
  }
  return s;
}

TEST(PolicyFuzzTest, SeedsAndMutationsNeverCrash) {
  std::vector<std::string> corpus = {
      Read("bastion/policy/testdata/example.yaml"),
      "version: 1\nservices:\n  - {name: a, select: {names: [a]}, depends_on: [{service: a, "
      "ports: [tcp/1-2], except: [tcp/2]}]}\n",
      "version: 1\naudit: true\nhosts: [{name: h, addresses: [10.0.0.2]}]\nservices: []\n",
      "", "a: &x [*x]\n", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
  };
  ASSERT_FALSE(corpus[0].empty()) << "seed policy missing from runfiles";
  for (const std::string& seed : corpus) ASSERT_EQ(FuzzOne(seed), 0);
  std::mt19937 rng(20261126);
  for (int i = 0; i < 20000; ++i) {
    std::string input = Mutate(corpus[rng() % corpus.size()], corpus, rng);
    ASSERT_EQ(FuzzOne(input), 0) << "input #" << i;
    if (i % 7 == 0) corpus.push_back(input);  // mutate mutants too, a little like libFuzzer
    if (corpus.size() > 256) corpus.erase(corpus.begin() + 6);
  }
}

}  // namespace
