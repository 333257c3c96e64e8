"""bpf_skeleton: compiles a `*.bpf.c` with clang -target bpf and wraps the libbpf skeleton.

Example:
    bpf_skeleton(name = "lxc", src = "lxc.bpf.c", hdrs = glob(["lib/*.h"]))
gives the cc_library `:lxc` with the header `lxc.skel.h` (struct lxc, lxc__open(),
...), and the object `lxc.bpf.o` for tools that load it by path.
Kernel-side code uses the UAPI headers (linux-libc-dev) and libbpf's bpf_helpers.h.
"""

load("@rules_cc//cc:defs.bzl", "cc_library")

def bpf_skeleton(name, src, hdrs = [], visibility = None, **kwargs):
    obj = name + ".bpf.o"
    skel = name + ".skel.h"
    native.genrule(
        name = name + "_bpf_obj",
        srcs = [src] + hdrs,
        outs = [obj],
        cmd = ("clang -O2 -g -target bpf -D__TARGET_ARCH_x86 " +
               "-I/usr/include/x86_64-linux-gnu -I. -I$(GENDIR) " +
               "-Wall -Werror -c $(location {}) -o $@").format(src),
    )
    native.genrule(
        name = name + "_skel",
        srcs = [obj],
        outs = [skel],
        cmd = "/usr/sbin/bpftool gen skeleton $< name {} > $@".format(name),
    )
    cc_library(
        name = name,
        hdrs = [skel],
        deps = ["//third_party:libbpf"],
        visibility = visibility,
        **kwargs
    )
