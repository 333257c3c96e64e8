"""pkg_config_repository: wraps a Debian -dev package as a cc_library, offline.

The repository runs `pkg-config` once (when a target first needs it) and writes a
BUILD file with one target, `:lib`, whose linkopts are `pkg-config --libs` and
whose include directories outside /usr/include are symlinked in and exported.
Compile flags that are neither -I nor -D (DPDK's `-include rte_config.h
-march=corei7`) cannot be exported by a cc_library; they are written to
`defs.bzl` as COPTS for dependents to pass (see //third_party:dpdk.bzl).
A missing package fails with the package name and the command that installs it.
"""

def _words(text):
    return [w for w in text.replace("\n", " ").split(" ") if w]

def _pkg_config_impl(ctx):
    mods = ctx.attr.modules
    libs = ctx.execute(["pkg-config", "--libs"] + mods)
    if libs.return_code != 0:
        fail(("pkg-config cannot find {}: {}\nRun `tools/dctk setup` to install the " +
              "Debian packages dctk needs.").format(" ".join(mods), libs.stderr.strip()))
    cflags = _words(ctx.execute(["pkg-config", "--cflags"] + mods).stdout)
    includes = []
    defines = []
    copts = []  # other flags (-include, -march): Bazel cannot export them
    for flag in cflags:
        if flag.startswith("-I"):
            if flag[2:] != "/usr/include":
                name = "include_%d" % len(includes)
                ctx.symlink(flag[2:], name)
                includes.append(name)
        elif flag.startswith("-D"):
            defines.append(flag[2:])
        else:
            copts.append(flag)

    # --as-needed would leak to every library after it on a test's link line
    # and drop ones (abseil) that shared objects linked earlier need.
    linkopts = [w for w in _words(libs.stdout) if w != "-Wl,--as-needed"]
    ctx.file("defs.bzl", "# Compile flags that dependents pass as copts.\nCOPTS = %s\n" % repr(copts))
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD.bazel", """# Generated from `pkg-config {mods}`.
cc_library(
    name = "lib",
    hdrs = glob([i + "/**/*.h" for i in {includes}]),
    includes = {includes},
    defines = {defines},
    linkopts = {linkopts},
    visibility = ["//visibility:public"],
)
""".format(
        mods = " ".join(mods),
        includes = repr(includes),
        defines = repr(defines),
        linkopts = repr(linkopts),
    ))

pkg_config_repository = repository_rule(
    implementation = _pkg_config_impl,
    attrs = {"modules": attr.string_list(mandatory = True)},
    local = True,
    environ = ["PKG_CONFIG_PATH"],
)
