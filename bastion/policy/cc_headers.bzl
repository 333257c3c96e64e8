"""cc_headers: the transitive headers of cc_library targets, as files (for genrules that
compile with another compiler, such as the clang libFuzzer build)."""

def _cc_headers_impl(ctx):
    return [DefaultInfo(files = depset(transitive = [
        dep[CcInfo].compilation_context.headers
        for dep in ctx.attr.deps
    ]))]

cc_headers = rule(
    implementation = _cc_headers_impl,
    attrs = {"deps": attr.label_list(providers = [CcInfo])},
)
