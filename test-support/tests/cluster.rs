//! The test cluster forms, serves keys on every master, survives a failover and goes away.

use std::time::Duration;

use dag_test_support::TestCluster;

#[test]
fn a_test_cluster_forms_and_is_torn_down() {
    let Some(cluster) = TestCluster::start("a_test_cluster_forms_and_is_torn_down") else {
        return;
    };
    let nodes = cluster.nodes();
    assert_eq!(nodes.len(), 6, "{nodes:?}");
    let masters = cluster.master_ports();
    assert_eq!(masters.len(), 3);
    for &port in &masters {
        assert!(
            cluster.replica_of(port).is_some(),
            "master {port} has a replica"
        );
    }
    // Keys with different hash tags spread over the masters.
    let client = redis::cluster::ClusterClient::new(cluster.urls()).unwrap();
    let mut conn = client.get_connection().unwrap();
    for i in 0..64 {
        let _: () = redis::cmd("SET")
            .arg(format!("t:{{{i}}}:k"))
            .arg(i)
            .query(&mut conn)
            .unwrap();
    }
    let holding = masters
        .iter()
        .filter(|&&p| !cluster.keys_on(p, "t:*").is_empty())
        .count();
    assert_eq!(holding, 3, "64 tags land on every master");
    assert_eq!(cluster.keys_matching("t:*").len(), 64);

    // A replica taking over from its master (graceful failover).
    let old = masters[0];
    let replica = cluster.replica_of(old).unwrap();
    cluster.failover(replica, false).unwrap();
    assert!(cluster.master_ports().contains(&replica));
    cluster.wait_until_ok(Duration::from_secs(30)).unwrap();

    let urls = cluster.urls();
    drop(cluster);
    for url in urls {
        let gone = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection_with_timeout(Duration::from_millis(500))
            .is_err();
        assert!(gone, "{url} is down after drop");
    }
}

#[test]
fn a_killed_master_is_replaced_by_its_replica() {
    let Some(mut cluster) = TestCluster::start("a_killed_master_is_replaced_by_its_replica") else {
        return;
    };
    let victim = cluster.master_ports()[0];
    let replica = cluster.replica_of(victim).unwrap();
    cluster.kill(victim);
    if let Err(e) = cluster.wait_until_ok(Duration::from_secs(60)) {
        let info: String = cluster
            .query(replica, redis::cmd("CLUSTER").arg("INFO"))
            .unwrap();
        let nodes: String = cluster
            .query(replica, redis::cmd("CLUSTER").arg("NODES"))
            .unwrap();
        eprintln!("replica {replica}:\n{info}\n{nodes}");
        panic!("{e}");
    }
    assert!(cluster.master_ports().contains(&replica));
}
