//! The lab file read and refused as users write it.

use super::*;
use crate::scenario::MAX_CLIENT_HOSTS;

fn parse(text: &str) -> Result<LabSpec> {
    LabSpec::parse(text, "lab.yaml")
}

#[test]
fn the_seed_two_host_example_parses() {
    let lab = parse(
        "hosts:\n  server:\n    ssh: admin@192.168.100.12\n    sudo: true\n    address: 192.168.100.12\n    docker: true\n  client:\n    ssh: admin@192.168.100.21\n    sudo: true\n",
    )
    .unwrap();
    assert_eq!(
        lab.hosts.server.ssh.as_ref().unwrap().0,
        "admin@192.168.100.12"
    );
    assert!(lab.hosts.server.docker && lab.hosts.client().sudo);
    assert_eq!(lab.server_address().to_string(), "192.168.100.12");
}

#[test]
fn an_ssh_server_without_an_address_is_refused_at_its_line() {
    let e = parse("hosts:\n  server:\n    ssh: admin@h1\n  client: {}\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("lab.yaml:3: hosts.server.address is needed"),
        "{e}"
    );
}

#[test]
fn a_destination_that_ssh_would_read_as_an_option_is_refused() {
    let e = parse("hosts:\n  server: {}\n  client:\n    ssh: -oProxyCommand=x\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("lab.yaml:4:"), "{e}");
    assert!(e.contains("is not an SSH destination"), "{e}");
}

#[test]
fn ssh_options_on_a_local_host_are_refused() {
    let e = parse("hosts:\n  server:\n    identity: /k\n  client: {}\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("lab.yaml:3: hosts.server.identity is only for an SSH host"),
        "{e}"
    );
}

#[test]
fn unknown_keys_and_bad_addresses_carry_line_and_column() {
    let e = parse("hosts:\n  server:\n    adress: 1.2.3.4\n  client: {}\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("lab.yaml:3:5: "), "{e}");
    let e = parse("hosts:\n  server:\n    address: 1.2.3\n  client: {}\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("lab.yaml:3:14: "), "{e}");
}

#[test]
fn addresses_that_are_not_one_host_are_refused_where_they_are_written() {
    for (addr, why) in [
        ("0.0.0.0", "it means any address"),
        ("'::'", "it means any address"),
        ("224.0.0.1", "multicast or broadcast"),
        ("255.255.255.255", "multicast or broadcast"),
        (
            "'::ffff:10.1.2.3'",
            "IPv4-mapped IPv6 address: the traffic and conntrack's entries are IPv4; write 10.1.2.3",
        ),
    ] {
        let e = parse(&format!(
            "hosts:\n  server:\n    address: {addr}\n  client: {{}}\n"
        ))
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("lab.yaml:3:14: hosts.server.address: "),
            "{msg}"
        );
        assert!(msg.contains(why), "{addr}: {msg}");
        assert_eq!(e.exit_code(), 2);
    }
    let ok = parse("hosts:\n  server:\n    address: '::1'\n  client: {}\n").unwrap();
    assert_eq!(ok.server_address().to_string(), "::1");
}

#[test]
fn a_loopback_server_address_with_a_remote_client_is_refused() {
    let e = parse("hosts:\n  server:\n    address: 127.0.0.1\n  client:\n    ssh: c\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot reach"), "{e}");
}

#[test]
fn a_swarm_belongs_to_a_client_host_with_docker_and_a_real_constraint() {
    let ok = parse(
        "hosts:\n  server: {}\n  client:\n    docker: true\n    swarm: { constraint: node.labels.twlab.role==client }\n",
    )
    .expect("valid");
    let placement = ok.hosts.client().swarm.clone().expect("swarm");
    assert_eq!(
        placement.constraint.as_deref(),
        Some("node.labels.twlab.role==client")
    );
    assert!(placement.one_per_node, "one task per node by default");
    for (text, needle) in [
        (
            "hosts:\n  server: { docker: true, swarm: {} }\n  client: {}\n",
            "belongs to hosts.client",
        ),
        (
            "hosts:\n  server: {}\n  client: { swarm: {} }\n",
            "docker: true",
        ),
        (
            "hosts:\n  server: {}\n  client: { docker: true, swarm: { constraint: \"x; rm -rf /\" } }\n",
            "placement constraint",
        ),
        (
            "hosts:\n  server: {}\n  client: { docker: true, swarm: { constraint: node.role } }\n",
            "KEY==VALUE",
        ),
    ] {
        let e = parse(text).unwrap_err().to_string();
        assert!(e.contains(needle), "{text}: {e}");
        assert!(
            e.contains(":3:") || e.contains(":2:"),
            "the line is named: {e}"
        );
    }
}

const TWO_CLIENTS: &str = "hosts:\n  server: { ssh: root@s, address: 198.18.1.1 }\n  clients:\n    - ssh: root@c1\n    - ssh: root@c2\n      port: 2222\n";

#[test]
fn a_list_of_client_hosts_parses_in_order_with_roles() {
    let lab = parse(TWO_CLIENTS).expect("valid");
    assert!(lab.clients_listed());
    let names: Vec<String> = lab
        .hosts
        .roles()
        .into_iter()
        .map(|(r, h)| format!("{r}={}", h.describe()))
        .collect();
    assert_eq!(
        names,
        [
            "server=ssh root@s",
            "client=ssh root@c1",
            "client 2=ssh root@c2 -p 2222"
        ]
    );
    assert_eq!(lab.hosts.client().describe(), "ssh root@c1");
    assert_eq!(
        lab.hosts.at(HostRole::client(1)).unwrap().port.unwrap().0,
        2222
    );
    assert!(lab.hosts.at(HostRole::client(2)).is_none());
    // One client host is still `hosts.client`, and it round-trips as one.
    let one = parse("hosts:\n  server: {}\n  client: {}\n").expect("valid");
    assert!(!one.clients_listed());
    assert_eq!(one.hosts.client_hosts().len(), 1);
    let yaml = serde_yaml_ng::to_string(&one).unwrap();
    assert!(!yaml.contains("clients"), "{yaml}");
}

#[test]
fn client_and_clients_are_one_or_the_other_at_their_line() {
    let neither = parse("hosts:\n  server: {}\n").unwrap_err();
    assert_eq!(neither.exit_code(), 2);
    let neither = neither.to_string();
    assert!(
        neither.starts_with("lab.yaml:1: hosts needs `client:`"),
        "{neither}"
    );
    let both = parse("hosts:\n  server: {}\n  client: {}\n  clients:\n    - {}\n")
        .unwrap_err()
        .to_string();
    assert!(
        both.starts_with("lab.yaml:4: hosts has both `client:` and `clients:`"),
        "{both}"
    );
    let many = format!(
        "hosts:\n  server: {{}}\n  clients:\n{}",
        (0..=MAX_CLIENT_HOSTS)
            .map(|i| format!("    - ssh: root@c{i}\n"))
            .collect::<String>()
    );
    let many = parse(&many).unwrap_err().to_string();
    assert!(
        many.starts_with("lab.yaml:3: hosts.clients lists 65 hosts; at most 64"),
        "{many}"
    );
}

#[test]
fn a_bad_key_of_a_listed_client_names_its_item_and_line() {
    // The same destination twice: the second item's `ssh:` line.
    let twice = "hosts:\n  server: { ssh: root@s, address: 198.18.1.1 }\n  clients:\n    - ssh: root@c1\n    - ssh: root@c2\n    - ssh: root@c1\n";
    let e = parse(twice).unwrap_err().to_string();
    assert!(
        e.starts_with("lab.yaml:6: hosts.clients[2] is the same host as hosts.clients[0]"),
        "{e}"
    );
    // Same name on another port is another destination, and is named
    // apart: the restore journal and env.json tell hosts by it.
    let ports = parse(TWO_CLIENTS.replace("root@c2", "root@c1").as_str()).expect("other port");
    let named: Vec<String> = ports.hosts.clients.iter().map(|h| h.describe()).collect();
    assert_ne!(named[0], named[1], "{named:?}");
    // An SSH-only key on a local client host, on its own line in item 1.
    let local = "hosts:\n  server: { address: 198.18.1.1 }\n  clients:\n    - ssh: root@c1\n    - sudo: true\n      port: 22\n";
    let e = parse(local).unwrap_err().to_string();
    assert!(
        e.starts_with("lab.yaml:6: hosts.clients[1].port is only for an SSH host"),
        "{e}"
    );
    // A flow-style item: its own line.
    let flow = "hosts:\n  server: { ssh: root@s, address: 198.18.1.1 }\n  clients:\n    - { ssh: root@c1 }\n    - { docker: true, swarm: {} }\n";
    let e = parse(flow).unwrap_err().to_string();
    assert!(
        e.starts_with("lab.yaml:5: hosts.clients[1].swarm: a Swarm runs the load from one manager"),
        "{e}"
    );
}

#[test]
fn a_local_server_with_listed_ssh_clients_needs_a_reachable_address() {
    let e = parse("hosts:\n  server: {}\n  clients:\n    - {}\n    - ssh: root@c2\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("address"), "{e}");
}
