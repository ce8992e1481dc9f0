//! Unit tests of the parent module (docker).

use super::*;

#[test]
fn pull_reference_adds_latest_only_without_tag_or_digest() {
    let r = |s: &str| {
        let (a, b) = pull_reference(s);
        (a, b)
    };
    assert_eq!(r("tomcat"), ("tomcat".into(), "latest".into()));
    assert_eq!(
        r("tomcat:8.5-alpine"),
        ("tomcat".into(), "8.5-alpine".into())
    );
    assert_eq!(
        r("twlab/tomcat:10.1"),
        ("twlab/tomcat".into(), "10.1".into())
    );
    assert_eq!(
        r("registry.example:5000/team/tomcat"),
        ("registry.example:5000/team/tomcat".into(), "latest".into())
    );
    assert_eq!(
        r("registry.example:5000/team/tomcat:10"),
        ("registry.example:5000/team/tomcat".into(), "10".into())
    );
    assert_eq!(
        r("tomcat@sha256:abcd"),
        ("tomcat@sha256:abcd".into(), String::new())
    );
}

#[tokio::test]
async fn a_missing_socket_is_an_environment_error_naming_it_and_the_fix() {
    let err = match Engine::at_socket(Path::new("/nonexistent/docker.sock"), "test engine".into())
        .await
    {
        Ok(_) => panic!("no engine there"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(matches!(err, Error::Environment(_)), "{err:?}");
    assert!(
        text.contains("/nonexistent/docker.sock") && text.contains("DOCKER_HOST"),
        "{text}"
    );
}

#[tokio::test]
async fn a_socket_without_a_daemon_is_an_environment_error_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.sock");
    // The file stays after the listener is gone: connecting is refused.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let err = match Engine::at_socket(&path, "test engine".into()).await {
        Ok(_) => panic!("nobody listens there"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(matches!(err, Error::Environment(_)), "{err:?}");
    assert!(
        text.contains(&path.display().to_string())
            && text.contains("not reachable")
            && text.contains("systemctl start docker"),
        "{text}"
    );
}

#[tokio::test]
async fn an_ssh_docker_host_is_refused_with_the_ways_that_work() {
    let err = match Engine::at_host("ssh://admin@example.invalid").await {
        Ok(_) => panic!("ssh:// is refused"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(
        text.contains("accepts unknown host keys")
            && text.contains("docker: true")
            && text.contains("DOCKER_HOST=unix://"),
        "{text}"
    );
}

#[test]
fn exit_text_names_code_and_engine_error() {
    let s = ContainerStatus {
        running: false,
        status: "exited".into(),
        exit_code: Some(1),
        error: None,
        oom_killed: false,
    };
    assert_eq!(s.exit_text(), "exited with code 1");
    let s = ContainerStatus {
        error: Some("exec: \"nope\": not found".into()),
        exit_code: Some(127),
        ..s
    };
    assert_eq!(
        s.exit_text(),
        "exited with code 127 (exec: \"nope\": not found)"
    );
}
