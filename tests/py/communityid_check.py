"""Recomputes the community_id of every `tracekit flows` row (JSON lines on stdin) with the
reference implementation (the `communityid` package) and prints each mismatch; exit 1 on any."""
import json
import sys

import communityid

def main():
    cid = communityid.CommunityID()
    bad = checked = 0
    for line in sys.stdin:
        row = json.loads(line)
        if row["community_id"] is None:
            continue
        proto = row["proto"]
        c, s = row["client"], row["server"]
        cp, sp = row["client_port"], row["server_port"]
        if cp is None:
            tpl = communityid.FlowTuple(int(row["ip_proto"]), c, s)
        elif proto == "tcp":
            tpl = communityid.FlowTuple.make_tcp(c, s, cp, sp)
        elif proto == "udp":
            tpl = communityid.FlowTuple.make_udp(c, s, cp, sp)
        elif proto == "sctp":
            tpl = communityid.FlowTuple.make_sctp(c, s, cp, sp)
        elif proto == "icmp":
            tpl = communityid.FlowTuple.make_icmp(c, s, cp, sp)
        elif proto == "icmpv6":
            tpl = communityid.FlowTuple.make_icmp6(c, s, cp, sp)
        else:
            continue
        checked += 1
        want = cid.calc(tpl)
        if want != row["community_id"]:
            bad += 1
            print(f"{row['proto']} {c}:{cp} -> {s}:{sp}: tracekit {row['community_id']}, reference {want}")
    print(f"checked {checked}")
    sys.exit(1 if bad else 0)


main()
