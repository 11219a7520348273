//! The behaviour every [`MetaStore`] must have, run against each backend (`sqlite`, and the
//! cache in front of it) by the `backend_suite!` macro below.

use serde_json::json;

use crate::*;

pub(crate) fn record(id: &str, project: &str, name: &str) -> InstanceRecord {
    InstanceRecord {
        id: id.into(),
        project_id: project.into(),
        engine: "kafka".into(),
        name: name.into(),
        status: "CREATING".into(),
        status_reason: None,
        document: json!({"storage_space_gb": 600, "listeners": ["127.0.1.1:9092"]}),
        created_at_ms: 1,
        updated_at_ms: 1,
    }
}

fn boot() -> (Domain, User, Project, Credential) {
    (
        Domain {
            id: "d1".into(),
            name: "acme".into(),
        },
        User {
            id: "u1".into(),
            domain_id: "d1".into(),
            name: "admin".into(),
            password_hash: "h".into(),
        },
        Project {
            id: "p1".into(),
            domain_id: "d1".into(),
            name: "cn-north-4".into(),
        },
        Credential {
            access_key: "AK".into(),
            secret_key: "SK".into(),
            user_id: "u1".into(),
        },
    )
}

pub(crate) async fn bootstrap_is_idempotent(s: &dyn MetaStore) {
    let (d, u, p, c) = boot();
    s.bootstrap(&d, &u, &p, &c).await.unwrap();
    s.bootstrap(&d, &u, &p, &c).await.unwrap();
    assert_eq!(s.domain_by_name("acme").await.unwrap(), Some(d.clone()));
    assert_eq!(s.user_by_name("d1", "admin").await.unwrap(), Some(u));
    assert_eq!(s.credential("AK").await.unwrap(), Some(c));
    assert_eq!(
        s.user("u1").await.unwrap().map(|x| x.name),
        Some("admin".into())
    );
    assert_eq!(s.project("p1").await.unwrap(), Some(p.clone()));
    assert_eq!(s.projects("d1").await.unwrap(), vec![p]);
    assert_eq!(s.user("nobody").await.unwrap(), None);
    assert_eq!(s.credential("NOAK").await.unwrap(), None);
}

pub(crate) async fn duplicate_names_are_refused_and_change_nothing(s: &dyn MetaStore) {
    s.insert_instance(
        &record("i1", "p1", "a"),
        &[Tag {
            key: "k".into(),
            value: "v".into(),
        }],
    )
    .await
    .unwrap();
    let err = s
        .insert_instance(
            &record("i2", "p1", "a"),
            &[Tag {
                key: "k".into(),
                value: "w".into(),
            }],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateName));
    assert!(s.instance("i2").await.unwrap().is_none());
    assert_eq!(s.tags("i1").await.unwrap().len(), 1);
    // Another project may reuse the name.
    s.insert_instance(&record("i3", "p2", "a"), &[])
        .await
        .unwrap();
    let mut renamed = record("i3", "p2", "b");
    renamed.status = "RUNNING".into();
    s.update_instance(&renamed).await.unwrap();
    assert_eq!(s.instance("i3").await.unwrap().unwrap().name, "b");
}

pub(crate) async fn status_changes_are_compare_and_set(s: &dyn MetaStore) {
    s.insert_instance(&record("i1", "p1", "a"), &[])
        .await
        .unwrap();
    assert!(!s
        .set_instance_status("i1", Some("RUNNING"), "DELETING", None, 2)
        .await
        .unwrap());
    assert!(s
        .set_instance_status("i1", Some("CREATING"), "RUNNING", None, 2)
        .await
        .unwrap());
    let r = s.instance("i1").await.unwrap().unwrap();
    assert_eq!((r.status.as_str(), r.updated_at_ms), ("RUNNING", 2));
    assert_eq!(r.document, record("i1", "p1", "a").document);
}

pub(crate) async fn deleting_an_instance_removes_its_tags_and_tasks(s: &dyn MetaStore) {
    s.insert_instance(
        &record("i1", "p1", "a"),
        &[Tag {
            key: "k".into(),
            value: "v".into(),
        }],
    )
    .await
    .unwrap();
    let task = TaskRecord {
        id: "t1".into(),
        instance_id: "i1".into(),
        name: "restart".into(),
        status: "EXECUTING".into(),
        params: String::new(),
        user_id: "u".into(),
        user_name: "n".into(),
        created_at_ms: 1,
        updated_at_ms: 1,
    };
    s.insert_task(&task).await.unwrap();
    s.update_task("t1", "SUCCESS", 5).await.unwrap();
    assert_eq!(s.task("i1", "t1").await.unwrap().unwrap().status, "SUCCESS");
    assert_eq!(
        s.project_tags("p1", "kafka").await.unwrap(),
        vec![("k".to_string(), vec!["v".to_string()])]
    );
    assert!(s.project_tags("p1", "rabbitmq").await.unwrap().is_empty());
    s.delete_instance("i1").await.unwrap();
    assert!(s.instance("i1").await.unwrap().is_none());
    assert!(s.tasks("i1").await.unwrap().is_empty());
    assert!(s.tags("i1").await.unwrap().is_empty());
}

pub(crate) async fn tag_changes(s: &dyn MetaStore) {
    s.insert_instance(&record("i1", "p1", "a"), &[])
        .await
        .unwrap();
    let t = |k: &str, v: &str| Tag {
        key: k.into(),
        value: v.into(),
    };
    s.change_tags("i1", &[t("a", "1"), t("b", "2")], &[])
        .await
        .unwrap();
    s.change_tags("i1", &[t("a", "3")], &[t("b", "nope")])
        .await
        .unwrap();
    assert_eq!(s.tags("i1").await.unwrap(), vec![t("a", "3"), t("b", "2")]);
    s.change_tags("i1", &[], &[t("b", "")]).await.unwrap();
    assert_eq!(s.tags("i1").await.unwrap(), vec![t("a", "3")]);
}

pub(crate) async fn listings_are_newest_first_by_project(s: &dyn MetaStore) {
    for (id, project, at) in [
        ("i1", "p1", 1),
        ("i2", "p2", 2),
        ("i3", "p1", 3),
        ("i0", "p1", 3),
    ] {
        let mut r = record(id, project, id);
        r.created_at_ms = at;
        s.insert_instance(&r, &[]).await.unwrap();
    }
    let ids = |v: Vec<InstanceRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.instances(Some("p1")).await.unwrap()),
        ["i0", "i3", "i1"]
    );
    assert_eq!(
        ids(s.instances(None).await.unwrap()),
        ["i0", "i3", "i2", "i1"]
    );
    let mut r = s.instance("i1").await.unwrap().unwrap();
    r.status = "RUNNING".into();
    r.document = json!({"changed": true});
    s.update_instance(&r).await.unwrap();
    assert_eq!(s.instance("i1").await.unwrap(), Some(r));
}

/// Runs every test of the suite against the store `$open` makes, in a module `$name`.
macro_rules! backend_suite {
    ($name:ident, $open:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn bootstrap_is_idempotent() {
                crate::suite::bootstrap_is_idempotent(&$open).await
            }

            #[tokio::test]
            async fn duplicate_names_are_refused_and_change_nothing() {
                crate::suite::duplicate_names_are_refused_and_change_nothing(&$open).await
            }

            #[tokio::test]
            async fn status_changes_are_compare_and_set() {
                crate::suite::status_changes_are_compare_and_set(&$open).await
            }

            #[tokio::test]
            async fn deleting_an_instance_removes_its_tags_and_tasks() {
                crate::suite::deleting_an_instance_removes_its_tags_and_tasks(&$open).await
            }

            #[tokio::test]
            async fn tag_changes() {
                crate::suite::tag_changes(&$open).await
            }

            #[tokio::test]
            async fn listings_are_newest_first_by_project() {
                crate::suite::listings_are_newest_first_by_project(&$open).await
            }
        }
    };
}

pub(crate) use backend_suite;
