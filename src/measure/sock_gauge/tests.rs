use super::*;

#[test]
fn a_side_reads_its_role_and_the_namespace_s_time_wait() {
    let mut g = Gauge::default();
    g.live[0][10] = 1; // the listener
    g.live[0][1] = 3;
    g.live[1][1] = 2;
    g.live[0][5] = 1;
    g.live[0][6] = 4; // never written by the program: time-wait is sockstat's
    g.live[1][4] = -2; // changed state before the gauge was attached
    let server = counts_of(&g, Side::Server, 7);
    assert_eq!(server.get("LISTEN"), Some(&1));
    assert_eq!(server.get("ESTABLISHED"), Some(&3));
    assert_eq!(server.get("FIN_WAIT2"), Some(&1));
    assert_eq!(server.get("TIME_WAIT"), Some(&7));
    assert_eq!(server.len(), 4);
    let client = counts_of(&g, Side::Client, 0);
    assert_eq!(client.get("ESTABLISHED"), Some(&2));
    assert_eq!(client.len(), 1, "{client:?}");
}

#[test]
fn the_map_value_has_the_c_layout() {
    // struct gauge: 16 bytes of endpoint and padding, then 2 x 16 s64.
    assert_eq!(std::mem::size_of::<Gauge>(), 16 + 2 * 16 * 8);
    assert_eq!(std::mem::align_of::<Gauge>(), 8);
}
