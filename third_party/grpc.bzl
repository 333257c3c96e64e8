"""cc_grpc_library: C++ gRPC stubs for a proto_library, with Debian's grpc_cpp_plugin.

Example:
    proto_library(name = "foo_proto", srcs = ["foo.proto"])
    cc_proto_library(name = "foo_cc_proto", deps = [":foo_proto"])
    cc_grpc_library(name = "foo_cc_grpc", srcs = ["foo.proto"], deps = [":foo_cc_proto"])

`srcs` are the .proto files that declare services (one proto_library's worth);
`deps` must include their cc_proto_library. `imports` lists the .proto files
that `srcs` import (protoc reads them; no stubs are generated for them).
"""

load("@rules_cc//cc:defs.bzl", "cc_library")

def cc_grpc_library(name, srcs, deps, imports = [], visibility = None, **kwargs):
    outs = []
    for src in srcs:
        stem = src[:-len(".proto")]
        outs += [stem + ".grpc.pb.h", stem + ".grpc.pb.cc"]
    native.genrule(
        name = name + "_codegen",
        srcs = srcs + imports,
        outs = outs,
        cmd = ("/usr/bin/protoc --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin " +
               "-I. --grpc_out=$(GENDIR) " +
               " ".join(["$(location %s)" % s for s in srcs])),
    )
    cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        deps = deps + ["//third_party:grpc", "//third_party:protobuf"],
        visibility = visibility,
        **kwargs
    )
