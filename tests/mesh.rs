//! The local infrastructure in `mesh/`, checked on a machine without
//! Docker: the compose file validates for every environment and routes
//! each one's domains, Prometheus' configuration and alert rules pass
//! `promtool`, every Grafana dashboard uses provisioned datasources and only
//! documented metrics, and `mesh/native/run.sh` runs the parts Debian
//! packages (Redis, PostgreSQL, PgBouncer, Prometheus) with the mesh's own
//! configuration files around the example service: Prometheus scrapes it,
//! it reaches PostgreSQL through PgBouncer, and it exports every metric a
//! dashboard or an alert rule names.
//!
//! The tools come from Debian packages (`.ci/run` installs them); a missing
//! one fails the test with the `apt-get` line that installs it. YAML is read
//! through python3's `yaml` module, which docker-compose itself runs on.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use athyper_test_support::{HttpAnswer, Proc, example, http_get};
use serde_json::Value;

/// The environments, each with the suffix its env file gives host names.
const ENVIRONMENTS: [(&str, &str); 3] = [
    ("local", ".athyper.local"),
    ("staging", "-t.athyper.com"),
    ("production", ".athyper.com"),
];

/// Host names Traefik routes, before the environment's suffix.
const ROUTED_HOSTS: [&str; 7] = [
    "api",
    "auth",
    "grafana",
    "prometheus",
    "s3",
    "minio",
    "traefik",
];

/// Every service of the compose file.
const SERVICES: [&str; 14] = [
    "traefik",
    "keycloak",
    "postgres",
    "pgbouncer",
    "redis",
    "minio",
    "minio-init",
    "athyper",
    "prometheus",
    "grafana",
    "tempo-init",
    "tempo",
    "loki",
    "promtail",
];

/// Where the Grafana container reads the dashboards from.
const DASHBOARDS_IN_GRAFANA: &str = "/var/lib/grafana/dashboards";

fn mesh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mesh")
}

/// `name` on PATH, or a failure naming the Debian package that has it.
fn tool(name: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|path| path.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not on PATH; install it with `apt-get install -y {package}` \
                 (`.ci/run` does this on a bare machine)"
            )
        })
}

fn output(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{command:?} does not start: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// YAML as JSON, read by python3's `yaml` module.
fn yaml(source: &str) -> Value {
    let mut child = Command::new(tool("python3", "python3-yaml"))
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(source.as_bytes())
        .expect("python3 reads the YAML");
    let done = child.wait_with_output().expect("python3 runs");
    assert!(
        done.status.success(),
        "python3 could not read YAML (apt-get install -y python3-yaml): {}",
        text(&done.stderr)
    );
    serde_json::from_slice(&done.stdout).expect("python3 writes JSON")
}

fn yaml_file(path: &Path) -> Value {
    let source = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    yaml(&source)
}

/// The `KEY=VALUE` lines of an env file.
fn env_file(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("{}: `{line}` is not KEY=VALUE", path.display()));
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

// --- docker-compose ---------------------------------------------------------

#[test]
fn compose_file_validates_for_every_environment() {
    let compose = tool("docker-compose", "docker-compose");
    let secrets = env_file(&mesh().join(".env.example"));
    assert!(
        secrets.len() >= 5,
        ".env.example lists too few secrets: {secrets:?}"
    );

    let env_dir = mesh().join("env");
    let found: BTreeSet<String> = std::fs::read_dir(&env_dir)
        .expect("mesh/env exists")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".env")?.to_owned())
        })
        .collect();
    let expected: BTreeSet<String> = ENVIRONMENTS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(found, expected, "the env files in mesh/env");

    for (environment, suffix) in ENVIRONMENTS {
        let env_path = env_dir.join(format!("{environment}.env"));
        let settings = env_file(&env_path);
        let compose_command = |args: &[&str], with_secrets: bool| {
            let mut command = Command::new(&compose);
            command
                .arg("--env-file")
                .arg(&env_path)
                .arg("-f")
                .arg(mesh().join("docker-compose.yml"))
                .args(args);
            // The files' values, whatever this shell has exported.
            for (key, _) in settings.iter().chain(&secrets) {
                command.env_remove(key);
            }
            for var in [
                "COMPOSE_FILE",
                "COMPOSE_PROJECT_NAME",
                "COMPOSE_PATH_SEPARATOR",
            ] {
                command.env_remove(var);
            }
            if with_secrets {
                command.envs(secrets.iter().map(|(k, v)| (k, v)));
            }
            output(&mut command)
        };

        let quiet = compose_command(&["config", "-q"], true);
        assert!(
            quiet.status.success(),
            "docker-compose --env-file env/{environment}.env config -q failed:\n{}",
            text(&quiet.stderr)
        );

        // Secrets have no defaults: without them docker-compose refuses.
        let bare = compose_command(&["config", "-q"], false);
        assert!(
            !bare.status.success() && text(&bare.stderr).contains("(see .env.example)"),
            "env/{environment}.env without the secrets should fail, naming .env.example; got {} and:\n{}",
            bare.status,
            text(&bare.stderr)
        );

        let resolved = compose_command(&["config"], true);
        assert!(resolved.status.success(), "{}", text(&resolved.stderr));
        check_resolved_compose(environment, suffix, &yaml(&text(&resolved.stdout)));
    }
}

/// Checks the compose file as docker-compose resolved it for one
/// environment.
fn check_resolved_compose(environment: &str, suffix: &str, config: &Value) {
    let services = config["services"]
        .as_object()
        .expect("the resolved file has services");
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        SERVICES.into_iter().collect(),
        "the services of docker-compose.yml"
    );
    let named_volumes = config["volumes"]
        .as_object()
        .expect("the resolved file has named volumes");

    let mut rules = BTreeMap::new();
    for (name, service) in services {
        // A pinned image: a tag, and not `latest`.
        let image = service["image"].as_str().unwrap_or_default();
        let tag = image
            .rsplit_once(':')
            .filter(|(repository, tag)| !tag.contains('/') && !repository.is_empty())
            .map(|(_, tag)| tag);
        assert!(
            tag.is_some_and(|t| t != "latest"),
            "service `{name}` runs image `{image}`, which has no pinned tag"
        );

        // Whatever keeps running says whether it is healthy.
        if service["restart"] != "no" {
            assert!(
                service["healthcheck"]["test"].is_array(),
                "service `{name}` keeps running but has no healthcheck"
            );
        }

        for volume in service["volumes"].as_array().into_iter().flatten() {
            let volume = volume.as_str().expect("volumes resolve to strings");
            let source = volume.split(':').next().unwrap_or_default();
            if source.starts_with('/') {
                if source != "/var/run/docker.sock" {
                    assert!(
                        Path::new(source).exists(),
                        "service `{name}` mounts {source}, which does not exist"
                    );
                }
            } else {
                assert!(
                    named_volumes.contains_key(source),
                    "service `{name}` mounts volume `{source}`, which is not declared"
                );
            }
        }

        // Only the gateway publishes ports beyond loopback.
        for port in service["ports"].as_array().into_iter().flatten() {
            let host_ip = match port {
                Value::String(spec) => spec.split(':').next().unwrap_or_default().to_owned(),
                other => other["host_ip"].as_str().unwrap_or_default().to_owned(),
            };
            assert!(
                name == "traefik" || host_ip == "127.0.0.1",
                "service `{name}` publishes {port} beyond loopback"
            );
        }

        for (label, value) in service["labels"].as_object().into_iter().flatten() {
            if let Some(router) = label
                .strip_prefix("traefik.http.routers.")
                .and_then(|rest| rest.strip_suffix(".rule"))
            {
                rules.insert(
                    router.to_owned(),
                    value.as_str().unwrap_or_default().to_owned(),
                );
            }
        }
    }

    for host in ROUTED_HOSTS {
        let wanted = format!("Host(`{host}{suffix}`)");
        assert!(
            rules.values().any(|rule| rule.contains(&wanted)),
            "env/{environment}.env: no Traefik router matches {wanted}; the rules are {rules:#?}"
        );
    }
    for rule in rules.values() {
        assert!(
            rule.contains(&format!("{suffix}`)")),
            "env/{environment}.env: router rule `{rule}` is not on the environment's domain"
        );
    }

    // TLS: a local certificate locally, Let's Encrypt elsewhere.
    let traefik = &services["traefik"];
    let args: Vec<&str> = traefik["command"]
        .as_array()
        .expect("traefik has a command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let resolver = args
        .iter()
        .find_map(|a| a.strip_prefix("--entrypoints.websecure.http.tls.certresolver="))
        .expect("the websecure entrypoint names its certificate resolver");
    let tls_file = traefik["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|v| v.contains(":/etc/traefik/dynamic/tls.yml"))
        .expect("traefik mounts a TLS file");
    if environment == "local" {
        assert_eq!(resolver, "", "the local environment asks no ACME server");
        assert!(tls_file.contains("tls-local.yml"), "{tls_file}");
    } else {
        assert_eq!(resolver, "letsencrypt", "env/{environment}.env");
        assert!(tls_file.contains("tls-acme.yml"), "{tls_file}");
    }

    // The example goes to PostgreSQL through PgBouncer, to Tempo over OTLP.
    let example = &services["athyper"]["environment"];
    let database_url = example["DATABASE_URL"].as_str().unwrap_or_default();
    assert!(
        database_url.contains("@pgbouncer:6432/"),
        "the example's DATABASE_URL does not go through PgBouncer: {database_url}"
    );
    assert_eq!(example["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://tempo:4317");

    let grafana_mounts = services["grafana"]["volumes"].to_string();
    assert!(
        grafana_mounts.contains(&format!("grafana/dashboards:{DASHBOARDS_IN_GRAFANA}")),
        "grafana does not mount mesh/grafana/dashboards at {DASHBOARDS_IN_GRAFANA}: {grafana_mounts}"
    );
}

// --- Prometheus ---------------------------------------------------------------

#[test]
fn prometheus_config_and_alert_rules_pass_promtool() {
    let promtool = tool("promtool", "prometheus");
    let dir = mesh().join("prometheus");

    let check = |args: &[&str]| {
        let done = output(Command::new(&promtool).args(args).current_dir(&dir));
        assert!(
            done.status.success(),
            "promtool {} failed:\n{}{}",
            args.join(" "),
            text(&done.stdout),
            text(&done.stderr)
        );
        text(&done.stdout) + &text(&done.stderr)
    };
    // `check config` also checks the rule files the config names.
    let report = check(&["check", "config", "prometheus.yml"]);
    assert!(
        !report.contains(" 0 rule files found"),
        "prometheus.yml loads no rule files:\n{report}"
    );
    let rule_files = rule_files();
    assert!(
        !rule_files.is_empty(),
        "no mesh/prometheus/rules/*.rules.yml"
    );
    for file in &rule_files {
        check(&["check", "rules", &file.display().to_string()]);
    }
    check(&["test", "rules", "rules/athyper.test.yml"]);

    // It scrapes the example and itself.
    let config = yaml_file(&dir.join("prometheus.yml"));
    let jobs: BTreeMap<&str, &Value> = config["scrape_configs"]
        .as_array()
        .expect("scrape_configs")
        .iter()
        .map(|job| (job["job_name"].as_str().unwrap_or_default(), job))
        .collect();
    assert!(
        jobs.contains_key("prometheus"),
        "Prometheus does not scrape itself"
    );
    let athyper = jobs
        .get("athyper")
        .expect("Prometheus has a scrape job `athyper`");
    // athyper's series carry no label a scrape sets, so the scrape's own
    // `job` and `instance` stay authoritative.
    for (name, job) in &jobs {
        assert!(
            job["honor_labels"].is_null() || job["honor_labels"] == false,
            "scrape job `{name}` sets honor_labels"
        );
    }
    assert_eq!(
        athyper["static_configs"][0]["targets"][0], "athyper:8080",
        "the example's compose address"
    );
}

fn rule_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(mesh().join("prometheus/rules"))
        .expect("mesh/prometheus/rules exists")
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.to_string_lossy().ends_with(".rules.yml"))
        .collect();
    files.sort();
    files
}

// --- Grafana --------------------------------------------------------------------

/// uid → type of every provisioned datasource.
fn provisioned_datasources() -> BTreeMap<String, String> {
    let file = yaml_file(&mesh().join("grafana/provisioning/datasources/datasources.yml"));
    file["datasources"]
        .as_array()
        .expect("datasources.yml lists datasources")
        .iter()
        .map(|ds| {
            (
                ds["uid"]
                    .as_str()
                    .expect("every datasource has a uid")
                    .to_owned(),
                ds["type"]
                    .as_str()
                    .expect("every datasource has a type")
                    .to_owned(),
            )
        })
        .collect()
}

fn dashboards() -> Vec<(String, Value)> {
    let dir = mesh().join("grafana/dashboards");
    let mut found: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .expect("mesh/grafana/dashboards exists")
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let source = std::fs::read_to_string(&path).expect("readable");
            let json =
                serde_json::from_str(&source).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
            (name, json)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// Every panel, rows' nested ones included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, into: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            into.push(panel);
            walk(&panel["panels"], into);
        }
    }
    let mut all = Vec::new();
    walk(&dashboard["panels"], &mut all);
    all
}

/// Where a Prometheus expression names a metric: every `athyper_*` and
/// `process_*` identifier in it.
fn metric_names(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut names = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if ident(bytes[i]) && (i == 0 || !ident(bytes[i - 1])) {
            let end = (i..bytes.len())
                .find(|&j| !ident(bytes[j]))
                .unwrap_or(bytes.len());
            let word = &expr[i..end];
            if word.starts_with("athyper_") || word.starts_with("process_") {
                names.push(word.to_owned());
            }
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

/// Every Prometheus expression of a dashboard (queries, variables) or an
/// alert rule, with where it is: `(place, expression)`.
fn prometheus_expressions() -> Vec<(String, String)> {
    let prometheus_uids: BTreeSet<String> = provisioned_datasources()
        .into_iter()
        .filter(|(_, kind)| kind == "prometheus")
        .map(|(uid, _)| uid)
        .collect();
    let mut found = Vec::new();
    for (file, dashboard) in dashboards() {
        for panel in panels(&dashboard) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let uid = target["datasource"]["uid"]
                    .as_str()
                    .or(panel["datasource"]["uid"].as_str())
                    .unwrap_or_default();
                if prometheus_uids.contains(uid) {
                    found.push((
                        format!("{file}: {}", panel["title"].as_str().unwrap_or_default()),
                        target["expr"].as_str().unwrap_or_default().to_owned(),
                    ));
                }
            }
        }
        for variable in dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if prometheus_uids.contains(variable["datasource"]["uid"].as_str().unwrap_or_default())
            {
                let query = &variable["query"];
                let query = query["query"]
                    .as_str()
                    .or(query.as_str())
                    .unwrap_or_default();
                found.push((
                    format!("{file}: variable {}", variable["name"]),
                    query.to_owned(),
                ));
            }
        }
    }
    for file in rule_files() {
        let rules = yaml_file(&file);
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for group in rules["groups"].as_array().into_iter().flatten() {
            for rule in group["rules"].as_array().into_iter().flatten() {
                let what = rule["alert"]
                    .as_str()
                    .or(rule["record"].as_str())
                    .unwrap_or("?");
                found.push((
                    format!("{name}: {what}"),
                    rule["expr"].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
    }
    found
}

/// Every metric a dashboard or an alert rule uses, with where it is used.
fn metrics_used() -> BTreeMap<String, BTreeSet<String>> {
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (place, expr) in prometheus_expressions() {
        for name in metric_names(&expr) {
            used.entry(name).or_default().insert(place.clone());
        }
    }
    used
}

/// The label names an expression groups by (`by (…)`, `without (…)`), takes
/// values of (`label_values(…, name)`) or matches (`name="…"`, `name=~…`,
/// `name!=…`), each with what it is compared to (empty for a grouping).
fn labels_used(expr: &str) -> Vec<(String, String)> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut used = Vec::new();
    // Groupings.
    for keyword in ["by", "without"] {
        let mut rest = expr;
        while let Some(at) = rest.find(keyword) {
            let before = rest[..at].chars().next_back();
            let after = rest[at + keyword.len()..].trim_start();
            rest = &rest[at + keyword.len()..];
            if before.is_some_and(ident) || !after.starts_with('(') {
                continue;
            }
            let list = &after[1..after.find(')').unwrap_or(after.len())];
            used.extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| (l.to_owned(), String::new())),
            );
        }
    }
    // label_values(selector, label)
    let mut rest = expr;
    while let Some(at) = rest.find("label_values(") {
        rest = &rest[at + "label_values(".len()..];
        let args = &rest[..rest.rfind(')').unwrap_or(rest.len())];
        if let Some((_, label)) = args.rsplit_once(',') {
            used.push((label.trim().to_owned(), String::new()));
        }
    }
    // Matchers inside braces.
    let mut rest = expr;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
        let inner = &rest[open + 1..close];
        // Grafana's `{{label}}` legends and `$__…` are not matchers.
        if !inner.starts_with('{') {
            for matcher in inner.split(',') {
                let matcher = matcher.trim();
                if let Some(op) = matcher.find(['=', '!']) {
                    let name = matcher[..op].trim();
                    if !name.is_empty() && name.chars().all(ident) {
                        let value = matcher[op..].trim_start_matches(['=', '!', '~']).trim();
                        used.push((name.to_owned(), value.trim_matches('"').to_owned()));
                    }
                }
            }
        }
        rest = &rest[(close + 1).min(rest.len())..];
    }
    used
}

#[test]
fn labels_used_reads_groupings_variables_and_matchers() {
    let used = labels_used(
        r#"sum by (le, queue) (rate(x_bucket{queue=~"$queue", job_name!="a"}[5m])) / label_values(y{q="1"}, job_name)"#,
    );
    for expected in [
        ("le", ""),
        ("queue", ""),
        ("queue", "$queue"),
        ("job_name", "a"),
        ("q", "1"),
        ("job_name", ""),
    ] {
        assert!(
            used.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} not in {used:?}"
        );
    }
    assert!(labels_used("sum(rate(athyper_jobs_failed_total[5m]))").is_empty());
}

/// No dashboard or rule reads a job's handler from `job`: that is the
/// scrape's label (`job="athyper"`), and athyper names handlers in
/// `job_name`.
#[test]
fn dashboards_and_rules_group_jobs_by_job_name() {
    let mut grouped_by_job_name = 0;
    for (place, expr) in prometheus_expressions() {
        for (label, value) in labels_used(&expr) {
            assert!(
                !label.starts_with("exported_"),
                "{place} uses {label}, a label renamed by a scrape: {expr}"
            );
            if label == "job" {
                assert_eq!(
                    value, "athyper",
                    "{place} reads `job` other than as the scrape's job=\"athyper\": {expr}"
                );
            }
            grouped_by_job_name += usize::from(label == "job_name");
        }
    }
    assert!(grouped_by_job_name > 0, "nothing uses job_name");
    // Legends name it too.
    for (file, dashboard) in dashboards() {
        for panel in panels(&dashboard) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let legend = target["legendFormat"].as_str().unwrap_or_default();
                assert!(
                    !legend.contains("{{job}}") && !legend.contains("{{exported_job}}"),
                    "{file}: panel `{}` labels a series with `{legend}`",
                    panel["title"].as_str().unwrap_or_default()
                );
            }
        }
    }
}

/// The metric table at the top of athyper's metrics module: name → type.
fn documented_metrics() -> BTreeMap<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("athyper/src/observability/metrics.rs");
    std::fs::read_to_string(&path)
        .expect("athyper/src/observability/metrics.rs is readable")
        .lines()
        .filter_map(|line| {
            let row = line.strip_prefix("//! | `")?;
            let (name, rest) = row.split_once('`')?;
            let kind = rest
                .trim_start_matches([' ', '|'])
                .split(' ')
                .next()?
                .to_owned();
            Some((name.to_owned(), kind))
        })
        .collect()
}

#[test]
fn dashboards_use_provisioned_datasources_and_documented_metrics() {
    let datasources = provisioned_datasources();
    for uid in ["prometheus", "loki", "tempo"] {
        assert!(
            datasources.contains_key(uid),
            "datasources.yml provisions no `{uid}`: {datasources:?}"
        );
    }
    let provisioning = yaml_file(&mesh().join("grafana/provisioning/datasources/datasources.yml"));
    // Links between the datasources point at provisioned ones.
    let mut links = Vec::new();
    for ds in provisioning["datasources"].as_array().into_iter().flatten() {
        let json = &ds["jsonData"];
        for field in json["derivedFields"].as_array().into_iter().flatten() {
            links.push((ds["uid"].clone(), field["datasourceUid"].clone()));
        }
        for key in [
            "tracesToLogsV2",
            "tracesToMetrics",
            "lokiSearch",
            "serviceMap",
        ] {
            if !json[key].is_null() {
                links.push((ds["uid"].clone(), json[key]["datasourceUid"].clone()));
            }
        }
        for destination in json["exemplarTraceIdDestinations"]
            .as_array()
            .into_iter()
            .flatten()
        {
            links.push((ds["uid"].clone(), destination["datasourceUid"].clone()));
        }
    }
    for (from, to) in &links {
        assert!(
            to.as_str().is_some_and(|uid| datasources.contains_key(uid)),
            "datasource {from} links to {to}, which is not provisioned"
        );
    }
    assert!(
        links
            .iter()
            .any(|(from, to)| from == "loki" && to == "tempo"),
        "Loki log lines do not link their trace ids to Tempo"
    );
    assert!(
        links
            .iter()
            .any(|(from, to)| from == "tempo" && to == "loki"),
        "Tempo spans do not link to their logs in Loki"
    );

    let provider = yaml_file(&mesh().join("grafana/provisioning/dashboards/dashboards.yml"));
    assert_eq!(
        provider["providers"][0]["options"]["path"], DASHBOARDS_IN_GRAFANA,
        "the dashboard provider reads where docker-compose.yml mounts the dashboards"
    );

    let dashboards = dashboards();
    let mut uids = BTreeSet::new();
    let mut used_datasources: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, dashboard) in &dashboards {
        let uid = dashboard["uid"].as_str().unwrap_or_default();
        assert!(
            !uid.is_empty() && uids.insert(uid.to_owned()),
            "{file}: missing or repeated uid `{uid}`"
        );
        let check = |what: String, ds: &Value| {
            let uid = ds["uid"].as_str().unwrap_or_default();
            let kind = datasources.get(uid).unwrap_or_else(|| {
                panic!("{file}: {what} uses datasource `{ds}`, which is not provisioned")
            });
            assert_eq!(
                ds["type"].as_str(),
                Some(kind.as_str()),
                "{file}: {what}: datasource `{uid}` is a {kind}"
            );
            uid.to_owned()
        };
        let mut ids = BTreeSet::new();
        for panel in panels(dashboard) {
            let title = panel["title"].as_str().unwrap_or_default();
            assert!(
                ids.insert(panel["id"].to_string()),
                "{file}: panel id {} repeats",
                panel["id"]
            );
            if panel["type"] == "row" {
                continue;
            }
            let panel_uid = check(format!("panel `{title}`"), &panel["datasource"]);
            used_datasources
                .entry(file.clone())
                .or_default()
                .insert(panel_uid);
            let targets = panel["targets"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            assert!(!targets.is_empty(), "{file}: panel `{title}` has no query");
            for target in targets {
                if !target["datasource"].is_null() {
                    check(format!("a query of panel `{title}`"), &target["datasource"]);
                }
            }
        }
        for variable in dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if !variable["datasource"].is_null() {
                check(
                    format!("variable `{}`", variable["name"]),
                    &variable["datasource"],
                );
            }
        }
    }

    let dashboard_uids: BTreeSet<&str> = dashboards
        .iter()
        .map(|(_, d)| d["uid"].as_str().unwrap_or_default())
        .collect();
    for wanted in [
        "athyper-queues",
        "athyper-http",
        "athyper-resilience",
        "athyper-logs-traces",
    ] {
        assert!(
            dashboard_uids.contains(wanted),
            "no dashboard `{wanted}`: {dashboard_uids:?}"
        );
    }
    let logs_traces = &used_datasources["athyper-logs-traces.json"];
    assert!(
        logs_traces.contains("loki") && logs_traces.contains("tempo"),
        "the logs and traces dashboard reads {logs_traces:?}"
    );

    // Every metric named is one athyper documents (histograms by their
    // _bucket/_sum/_count series).
    let documented = documented_metrics();
    assert!(
        documented.contains_key("athyper_jobs_completed_total"),
        "cannot read the metric table of athyper/src/observability/metrics.rs"
    );
    let used = metrics_used();
    for wanted in [
        "athyper_queue_jobs",
        "athyper_job_duration_seconds_bucket",
        "athyper_job_wait_seconds_bucket",
        "athyper_jobs_failed_total",
        "athyper_http_requests_total",
        "athyper_http_request_duration_seconds_bucket",
        "athyper_breaker_state",
        "athyper_breaker_transitions_total",
        "athyper_adapter_call_duration_seconds_bucket",
    ] {
        assert!(used.contains_key(wanted), "no dashboard shows {wanted}");
    }
    for (name, places) in &used {
        let histogram_base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| {
                documented
                    .get(*base)
                    .is_some_and(|kind| kind == "histogram")
            });
        let known = documented.contains_key(name)
            || histogram_base.is_some()
            || (name.starts_with("process_") && documented.contains_key("process_*"));
        assert!(
            known,
            "{name} (used in {places:?}) is not in the metric table of athyper/src/observability/metrics.rs"
        );
    }
}

// --- the native run -------------------------------------------------------------

/// `mesh/native/run.sh --hold` while the test looks at what it started;
/// stopped (and its directory checked gone) when dropped, pass or fail.
struct NativeRun {
    proc: Proc,
    dir: Option<PathBuf>,
}

impl NativeRun {
    fn start() -> NativeRun {
        let mut command = Command::new(tool("bash", "bash"));
        command
            .arg(mesh().join("native/run.sh"))
            .args(["--hold", "--parent", &std::process::id().to_string()])
            .env("ATHYPER_SERVICE_BIN", example("service"))
            .env("MESH_NATIVE_TIMEOUT", "60");
        for var in [
            "REDIS_PORT",
            "POSTGRES_PORT",
            "PGBOUNCER_PORT",
            "PROMETHEUS_PORT",
            "SERVICE_PORT",
            "MESH_NATIVE_KEEP",
        ] {
            command.env_remove(var);
        }
        NativeRun {
            proc: Proc::spawn("mesh/native/run.sh", command),
            dir: None,
        }
    }

    /// Stops the run with SIGTERM and waits for its cleanup.
    fn stop(mut self) {
        self.proc.signal("TERM");
        let status = self.proc.wait_status(Duration::from_secs(60));
        assert!(
            status.success() || status.code() == Some(143),
            "mesh/native/run.sh ended with {status}; its output:\n{}",
            self.proc.output().join("\n")
        );
        if let Some(dir) = self.dir.take() {
            assert!(
                !dir.exists(),
                "mesh/native/run.sh left {} behind",
                dir.display()
            );
        }
    }
}

impl Drop for NativeRun {
    fn drop(&mut self) {
        // After a failure: let the script stop what it started and remove its
        // directory before the process is killed.
        if let Some(dir) = self.dir.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.proc.id().to_string()])
                .status();
            let give_up = Instant::now() + Duration::from_secs(30);
            while dir.exists() && Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

fn get(url: &str) -> HttpAnswer {
    block_on(http_get(url, &[])).unwrap_or_else(|e| panic!("{e}"))
}

/// Polls `probe` until it gives a value, failing with `what` after
/// `timeout`.
fn eventually<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let give_up = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if Instant::now() > give_up => {
                panic!("{what} did not happen within {timeout:?}; last: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// The series names in a Prometheus text exposition.
fn exposed_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn native_run_scrapes_the_example_and_reaches_postgres_through_pgbouncer() {
    for (name, package) in [
        ("redis-server", "redis-server"),
        ("redis-cli", "redis-tools"),
        ("pgbouncer", "pgbouncer"),
        ("prometheus", "prometheus"),
        ("psql", "postgresql-client"),
        ("curl", "curl"),
    ] {
        tool(name, package);
    }
    let server_installed = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .any(|version| version.path().join("bin/initdb").is_file());
    assert!(
        server_installed,
        "PostgreSQL's server is not installed (no /usr/lib/postgresql/*/bin/initdb); \
         install it with `apt-get install -y postgresql`"
    );

    let mut run = NativeRun::start();
    let ready = run
        .proc
        .wait_for("`mesh-native: ready`", Duration::from_secs(240), |line| {
            line.starts_with("mesh-native: ready ")
        });
    let values: BTreeMap<&str, &str> = ready
        .trim_start_matches("mesh-native: ready ")
        .split(' ')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let dir = PathBuf::from(values["MESH_DIR"]);
    run.dir = Some(dir.clone());
    let settings: BTreeMap<String, String> = env_file(&dir.join("mesh.env")).into_iter().collect();
    let service = settings["SERVICE_URL"].clone();
    let prometheus = settings["PROMETHEUS_URL"].clone();
    let postgres_port = &settings["POSTGRES_PORT"];
    assert_ne!(
        postgres_port, &settings["PGBOUNCER_PORT"],
        "PgBouncer and PostgreSQL share a port"
    );
    for url in [&service, &prometheus] {
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "{url} is not loopback"
        );
    }

    // Prometheus scraped the example: a sample of the job's counter, its
    // handler in `job_name` as the service exported it and the scrape's own
    // `job` and `instance` beside it.
    let (completed, labels) = eventually(
        "Prometheus returning athyper_jobs_completed_total >= 4 for job_name `process_order`",
        Duration::from_secs(60),
        || {
            let answer = get(&format!(
                "{prometheus}/api/v1/query?query=athyper_jobs_completed_total"
            ));
            let body: Value = serde_json::from_str(&answer.body).map_err(|e| e.to_string())?;
            body["data"]["result"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|sample| {
                    sample["metric"]["job_name"] == "process_order"
                        && sample["metric"]["queue"] == "orders"
                })
                .and_then(|sample| {
                    let count = sample["value"][1].as_str()?.parse::<f64>().ok()?;
                    Some((count, sample["metric"].clone()))
                })
                // run.sh completed at least 4 orders; a scrape may lag.
                .filter(|(count, _)| *count >= 4.0)
                .ok_or(answer.body)
        },
    );
    assert!(completed >= 4.0);
    assert_eq!(labels["job"], "athyper", "the scrape's job label: {labels}");
    assert_eq!(
        labels["instance"],
        service.trim_start_matches("http://"),
        "the scrape's instance label: {labels}"
    );
    // No series of the scrape had a label renamed for clashing with one the
    // scrape sets.
    let series = get(&format!(
        "{prometheus}/api/v1/series?match[]=%7Bjob%3D%22athyper%22%7D"
    ));
    let series: Value = serde_json::from_str(&series.body).expect("the series API answers JSON");
    let series = series["data"].as_array().expect("a list of series");
    assert!(
        series.iter().any(|s| s["job_name"] == "process_order"),
        "no series with job_name=\"process_order\": {series:?}"
    );
    for labels in series {
        let renamed: Vec<&String> = labels
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, _)| name)
            .filter(|name| name.starts_with("exported_"))
            .collect();
        assert!(renamed.is_empty(), "a series with {renamed:?}: {labels}");
    }
    let rules = get(&format!("{prometheus}/api/v1/rules"));
    assert!(
        rules.body.contains("\"name\":\"athyper-jobs\""),
        "Prometheus did not load the mesh's alert rules: {}",
        rules.body
    );

    // The example reaches PostgreSQL (through PgBouncer, which run.sh
    // proved by stopping it).
    eventually(
        "the `postgres` health check passing",
        Duration::from_secs(60),
        || {
            let answer = get(&format!("{service}/health"));
            let body: Value = serde_json::from_str(&answer.body).map_err(|e| e.to_string())?;
            let passing = body["checks"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|check| check["name"] == "postgres" && check["status"] == "pass");
            if passing { Ok(()) } else { Err(answer.body) }
        },
    );

    // The processed orders are in PostgreSQL, read on its own port.
    let psql = output(
        Command::new(tool("psql", "postgresql-client"))
            .args(["-X", "-A", "-t", "-h", "127.0.0.1", "-p", postgres_port])
            .args(["-U", &settings["DB_USER"], "-d", &settings["DB_NAME"]])
            .args(["-c", "SELECT count(*) FROM orders"])
            .env("PGPASSWORD", &settings["DB_PASSWORD"])
            .env_remove("PGHOST")
            .env_remove("PGSERVICE"),
    );
    assert!(psql.status.success(), "psql failed: {}", text(&psql.stderr));
    let rows: u64 = text(&psql.stdout).trim().parse().expect("a count");
    assert!(
        rows >= 4,
        "table orders has {rows} rows; run.sh stored at least 4"
    );

    // Every metric a dashboard or an alert rule uses is exported.
    let scrape = get(&format!("{service}/metrics"));
    assert_eq!(scrape.status, 200);
    let exposed = exposed_names(&scrape.body);
    let missing: Vec<String> = metrics_used()
        .into_iter()
        .filter(|(name, _)| !exposed.contains(name))
        .map(|(name, places)| format!("{name} (used in {places:?})"))
        .collect();
    assert!(
        missing.is_empty(),
        "the running example does not export:\n{}\nit exports: {exposed:?}",
        missing.join("\n")
    );

    run.stop();
}
