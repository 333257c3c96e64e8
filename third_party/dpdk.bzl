"""DPDK_COPTS: the compile flags libdpdk's pkg-config asks for beyond -I/-D.

Every cc_library or cc_binary that includes DPDK headers passes them:

    load("//third_party:dpdk.bzl", "DPDK_COPTS")
    cc_library(name = "port", srcs = ["port.cc"], copts = DPDK_COPTS,
               deps = ["//third_party:dpdk"])
"""

load("@system_dpdk//:defs.bzl", _COPTS = "COPTS")

DPDK_COPTS = _COPTS
