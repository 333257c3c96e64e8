"""Traffic tools the Bastion namespace test runs inside its namespaces (ip netns exec).

Each server binds port 0 and prints "port N" first, so the test learns the port and
knows the server is ready without sleeping. Every command bounds its own waiting.

  netns_tool.py tcp-server                  accept one connection, echo one message
  netns_tool.py tcp-client HOST PORT MSG    print "reply MSG" or "error WHY" (exit 1)
  netns_tool.py udp-server                  print "got MSG" per datagram until "END"
  netns_tool.py udp-send HOST PORT MSG...   one datagram per MSG
  netns_tool.py spoof IFACE SMAC SIP DMAC DIP DPORT MSG   raw UDP frame (scapy)
  netns_tool.py arpscan IFACE SMAC SIP PREFIX FIRST LAST  print "answer IP MAC" per reply
"""
import socket
import sys

WAIT_S = 10


def out(*words):
    print(*words, flush=True)


def tcp_server():
    s = socket.socket()
    s.bind(("0.0.0.0", 0))
    s.listen(1)
    s.settimeout(WAIT_S)
    out("port", s.getsockname()[1])
    conn, _ = s.accept()
    conn.settimeout(WAIT_S)
    data = conn.recv(100)
    conn.sendall(data)
    out("got", data.decode())
    conn.close()


def tcp_client(host, port, msg):
    try:
        s = socket.create_connection((host, int(port)), timeout=1.5)
        s.sendall(msg.encode())
        out("reply", s.recv(100).decode())
        return 0
    except OSError as e:
        out("error", type(e).__name__)
        return 1


def udp_server():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    s.settimeout(WAIT_S)
    out("port", s.getsockname()[1])
    while True:
        data = s.recv(65536).decode()  # whole datagrams, also fragmented ones
        out("got", data)
        if data == "END":
            return


def udp_send(host, port, *msgs):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for m in msgs:
        s.sendto(m.encode(), (host, int(port)))


def spoof(iface, smac, sip, dmac, dip, dport, msg):
    from scapy.all import Ether, IP, UDP, Raw, sendp
    frame = Ether(src=smac, dst=dmac) / IP(src=sip, dst=dip) / UDP(sport=40000, dport=int(dport)) / Raw(msg.encode())
    sendp(frame, iface=iface, verbose=False)


def arpscan(iface, smac, sip, prefix, first, last):
    from scapy.all import ARP, Ether, srp
    targets = [f"{prefix}.{i}" for i in range(int(first), int(last) + 1)]
    req = Ether(src=smac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=smac, psrc=sip, pdst=targets)
    answered, _ = srp(req, iface=iface, timeout=1.5, verbose=False)
    for _, reply in answered:
        out("answer", reply[ARP].psrc, reply[ARP].hwsrc)


COMMANDS = {"tcp-server": tcp_server, "tcp-client": tcp_client, "udp-server": udp_server,
            "udp-send": udp_send, "spoof": spoof, "arpscan": arpscan}

if __name__ == "__main__":
    sys.exit(COMMANDS[sys.argv[1]](*sys.argv[2:]) or 0)
