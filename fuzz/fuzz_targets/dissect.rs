//! Any bytes as a packet of any link type: dissection never panics, every range stays inside
//! the packet, and the views over those ranges read without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracekit_wire::{dissect, tcp::OptionSummary, tls};

fuzz_target!(|input: &[u8]| {
    let [a, b, packet @ ..] = input else { return };
    let link = u16::from_le_bytes([*a, *b]);
    let l = dissect(link, packet);
    for ip in l.ips().iter().chain(l.quoted.iter()) {
        assert!(ip.header.end as usize <= packet.len());
        assert!(ip.payload.end as usize <= packet.len());
        assert!(ip.header.start <= ip.header.end && ip.payload.start <= ip.payload.end);
        let _ = (ip.src(packet), ip.dst(packet), ip.ttl(packet), ip.flow(packet));
        if let Some(t) = ip.transport {
            assert!(t.header.end as usize <= packet.len() && t.payload.end as usize <= packet.len());
            let _ = t.ports(packet);
        }
    }
    if let Some(tcp) = l.tcp(packet) {
        let _ = OptionSummary::of(&tcp).layout_string();
        for (_, rec) in tls::Records::new(tcp.payload()) {
            let _ = rec.random(tcp.payload());
        }
    }
    if let Some(arp) = l.arp {
        let arp = tracekit_wire::arp::Arp::new_checked(&packet[arp.range()]).unwrap();
        let _ = (arp.sender_protocol(), arp.target_hardware());
    }
});
