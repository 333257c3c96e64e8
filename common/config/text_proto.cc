#include "common/config/text_proto.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/io/tokenizer.h"

namespace dctk::config {
namespace {

using google::protobuf::TextFormat;

// Collects the parser's messages as "file:line:col: message" (1-based).
class Collector : public google::protobuf::io::ErrorCollector {
 public:
  explicit Collector(absl::string_view filename) : filename_(filename) {}

  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    errors_.push_back(absl::StrCat(filename_, ":", line + 1, ":", column + 1, ": ", message));
  }

  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::string filename_;
  std::vector<std::string> errors_;
};

// The index ParseInfoTree wants: -1 for a singular field, and for a repeated
// field asked about as a whole, its first value.
int TreeIndex(const google::protobuf::FieldDescriptor* fd, int index) {
  if (!fd->is_repeated()) return -1;
  return index < 0 ? 0 : index;
}

}  // namespace

SourceMap::SourceMap(std::string filename) : filename_(std::move(filename)) {}

const google::protobuf::FieldDescriptor* SourceMap::Field(absl::string_view name) const {
  if (descriptor_ == nullptr) return nullptr;
  return descriptor_->FindFieldByName(std::string(name));
}

SourceMap SourceMap::Nested(absl::string_view field, int index) const {
  SourceMap nested(filename_);
  nested.path_ = FieldPath(field, index);
  const google::protobuf::FieldDescriptor* fd = Field(field);
  if (fd == nullptr || fd->message_type() == nullptr) return nested;
  nested.descriptor_ = fd->message_type();
  nested.line_ = Line(field, index);
  if (tree_ != nullptr) {
    nested.tree_ = tree_->GetTreeForNested(fd, TreeIndex(fd, index));
    if (nested.tree_ != nullptr) nested.root_ = root_;
  }
  return nested;
}

int SourceMap::Line(absl::string_view field, int index) const {
  const google::protobuf::FieldDescriptor* fd = Field(field);
  if (fd == nullptr || tree_ == nullptr) return line_;
  // The parser records one location per "field: value" or "field: [list]",
  // so the i-th value of a list has none: fall back to the list's own (the
  // nearest earlier recorded one), then to the line this message starts on.
  for (int i = TreeIndex(fd, index); i >= 0 || i == -1; --i) {
    TextFormat::ParseLocation loc = tree_->GetLocation(fd, i);
    if (loc.line >= 0) return loc.line + 1;
    if (i <= 0) break;
  }
  return line_;
}

std::string SourceMap::Where(absl::string_view field, int index) const {
  int line = Line(field, index);
  return line == 0 ? filename_ : absl::StrCat(filename_, ":", line);
}

std::string SourceMap::FieldPath(absl::string_view field, int index) const {
  std::string p = path_.empty() ? std::string(field) : absl::StrCat(path_, ".", field);
  if (index >= 0) absl::StrAppend(&p, "[", index, "]");
  return p;
}

absl::Status SourceMap::Error(absl::string_view field, int index,
                              absl::string_view message) const {
  return absl::InvalidArgumentError(
      absl::StrCat(Where(field, index), ": ", FieldPath(field, index), ": ", message));
}

absl::Status ParseTextProtoInto(absl::string_view text, absl::string_view filename,
                                google::protobuf::Message* out, SourceMap* source) {
  out->Clear();
  Collector collector(filename);
  auto tree = std::make_shared<TextFormat::ParseInfoTree>();
  TextFormat::Parser parser;
  parser.RecordErrorsTo(&collector);
  parser.WriteLocationsTo(tree.get());
  bool ok = parser.ParseFromString(std::string(text), out);
  if (!ok || !collector.errors().empty()) {
    std::string message = collector.errors().empty()
                              ? absl::StrCat(filename, ": cannot parse as ",
                                             out->GetDescriptor()->full_name())
                              : absl::StrJoin(collector.errors(), "\n");
    return absl::InvalidArgumentError(message);
  }
  if (source != nullptr) {
    *source = SourceMap(std::string(filename));
    source->descriptor_ = out->GetDescriptor();
    source->tree_ = tree.get();
    source->root_ = std::move(tree);
  }
  return absl::OkStatus();
}

absl::Status LoadTextProtoInto(absl::string_view path, google::protobuf::Message* out,
                               SourceMap* source) {
  std::ifstream in{std::string(path)};
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot open config file '", path, "'"));
  }
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return absl::DataLossError(absl::StrCat("cannot read config file '", path, "'"));
  }
  return ParseTextProtoInto(text.str(), path, out, source);
}

}  // namespace dctk::config
