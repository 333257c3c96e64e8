// Loading protobuf text-format files, with errors that say where.
//
// Any module keeps its settings as a proto message and its files in text
// format; this loader turns syntax errors into "file:line:col: message" and
// (with the *WithSource variants) keeps a SourceMap, so a semantic check run
// after parsing can also name the file, line and field path of a bad value:
// "cluster.conf:12: groups[1].members[2]: unknown node 'r9'".
//
// Example:
//   absl::StatusOr<MyModuleConfig> c = LoadTextProto<MyModuleConfig>(path);
//   if (!c.ok()) return c.status();  // "my.conf:3:7: Expected integer, got: x"
//
//   absl::StatusOr<TextProto<MyModuleConfig>> t = LoadTextProtoWithSource<MyModuleConfig>(path);
//   if (t->message.port() == 0)
//     return t->source.Error("port", -1, "must not be 0");  // "my.conf:4: port: must not be 0"
#ifndef DCTK_COMMON_CONFIG_TEXT_PROTO_H_
#define DCTK_COMMON_CONFIG_TEXT_PROTO_H_

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "google/protobuf/text_format.h"

namespace dctk::config {

// Where the fields of one (possibly nested) message of a parsed file came
// from. Cheap to copy; a copy shares the parse tree.
class SourceMap {
 public:
  // A map that knows only the file name: Where() gives "filename".
  explicit SourceMap(std::string filename = "<unknown>");

  const std::string& filename() const { return filename_; }
  // Field path of this message from the root, e.g. "groups[1]"; "" at the root.
  const std::string& path() const { return path_; }

  // The map of a message-typed field of this message (`index` -1 if the field
  // is not repeated). Fields the file did not mention give a map that knows
  // only the file name and path.
  SourceMap Nested(absl::string_view field, int index = -1) const;

  // 1-based line of `field` (`index`-th value if repeated; -1 means the first).
  // A value inside a "field: [a, b]" list gets the list's line; a field the
  // file does not set gets the line its message starts on; 0 if unknown.
  int Line(absl::string_view field, int index = -1) const;
  // "file:line" of the field, or "file" if unknown.
  std::string Where(absl::string_view field, int index = -1) const;
  // Path of the field from the root: "groups[1].members[2]".
  std::string FieldPath(absl::string_view field, int index = -1) const;
  // InvalidArgument "file:line: path: message".
  absl::Status Error(absl::string_view field, int index, absl::string_view message) const;

 private:
  friend absl::Status ParseTextProtoInto(absl::string_view, absl::string_view,
                                         google::protobuf::Message*, SourceMap*);
  const google::protobuf::FieldDescriptor* Field(absl::string_view name) const;

  std::string filename_;
  std::string path_;
  int line_ = 0;  // Where this message starts in the file; 0 if unknown.
  const google::protobuf::Descriptor* descriptor_ = nullptr;
  std::shared_ptr<const google::protobuf::TextFormat::ParseInfoTree> root_;
  const google::protobuf::TextFormat::ParseInfoTree* tree_ = nullptr;  // Inside *root_.
};

// A parsed message and where its fields came from.
template <typename M>
struct TextProto {
  M message;
  SourceMap source;
};

// Parses `text` into `*out` (cleared first). `filename` names the text in
// errors. `source`, if not null, receives the SourceMap of `*out`.
absl::Status ParseTextProtoInto(absl::string_view text, absl::string_view filename,
                                google::protobuf::Message* out, SourceMap* source);
// Reads the file at `path`, then as ParseTextProtoInto with filename = path.
absl::Status LoadTextProtoInto(absl::string_view path, google::protobuf::Message* out,
                               SourceMap* source);

template <typename M>
absl::StatusOr<M> ParseTextProto(absl::string_view text, absl::string_view filename) {
  M message;
  absl::Status s = ParseTextProtoInto(text, filename, &message, nullptr);
  if (!s.ok()) return s;
  return message;
}

template <typename M>
absl::StatusOr<M> LoadTextProto(absl::string_view path) {
  M message;
  absl::Status s = LoadTextProtoInto(path, &message, nullptr);
  if (!s.ok()) return s;
  return message;
}

template <typename M>
absl::StatusOr<TextProto<M>> ParseTextProtoWithSource(absl::string_view text,
                                                      absl::string_view filename) {
  TextProto<M> t;
  absl::Status s = ParseTextProtoInto(text, filename, &t.message, &t.source);
  if (!s.ok()) return s;
  return t;
}

template <typename M>
absl::StatusOr<TextProto<M>> LoadTextProtoWithSource(absl::string_view path) {
  TextProto<M> t;
  absl::Status s = LoadTextProtoInto(path, &t.message, &t.source);
  if (!s.ok()) return s;
  return t;
}

}  // namespace dctk::config

#endif  // DCTK_COMMON_CONFIG_TEXT_PROTO_H_
