//! The checkout: reservations, idempotent durable orders, zero oversell under a
//! thousand racing clients, and crash safety under SIGKILL.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

#[test]
fn reserve_then_order_moves_units_from_reserved_to_allocated() {
    let d = Daemon::start();
    let c = d.client();
    let web = c.with_token(Some(&seed(&c, "tent", 12, 2)));
    let res = web.reserve("web", "tent", 2, Some(900)).expect(201);
    assert!(res["id"].as_str().unwrap().starts_with("res_"));
    let s = stock(&c, "tent", Some("web"));
    assert_eq!(
        (s["reserved"].as_u64(), s["available"].as_u64()),
        (Some(2), Some(8))
    );

    let body = json!({"channel": "web", "reservation": res["id"], "customer": {"ref": "c"}, "ship_to": ship_to()});
    let order = web.order("key-1", &body).expect(201);
    assert_eq!(order["status"], "routed");
    assert_eq!(order["total"], 39800);
    assert_eq!(order["lines"][0]["price"], 19900);
    let ful = &order["fulfillments"][0];
    assert_eq!(ful["supplier"], "acme");
    assert_eq!(ful["lines"][0]["supplier_sku"], "AC-tent");
    assert!(ful["deadlines"]["ack_by"].as_str().is_some());
    assert_eq!(units(&c, "tent", Some("web")), (0, 2, 8));

    // The same key and body: the same order, no second one.
    let again = web.order("key-1", &body).expect(200);
    assert_eq!(again["id"], order["id"]);
    // The same key with another body: refused.
    let other = json!({"channel": "web", "lines": [{"sku": "tent", "qty": 1}], "customer": {"ref": "c"}, "ship_to": ship_to()});
    web.order("key-1", &other).problem(422, "invalid");
    // The reservation is used up.
    let reuse = json!({"channel": "web", "reservation": res["id"], "customer": {"ref": "c"}, "ship_to": ship_to()});
    web.order("key-2", &reuse)
        .problem(409, "reservation-expired");
    assert_eq!(stock(&c, "tent", None)["allocated"], 2);

    let id = order["id"].as_str().unwrap();
    assert_eq!(listed(&web, "/v1/orders?status=routed"), 1);
    assert_eq!(listed(&c, "/v1/orders?supplier=nobody"), 0);
    assert_eq!(
        order_event_types(&web, id),
        ["order.created", "fulfillment.routed"]
    );
}

#[test]
fn a_release_gives_units_back_and_channels_only_touch_their_own() {
    let d = Daemon::start();
    let c = d.client();
    let web = c.with_token(Some(&seed(&c, "tent", 5, 0)));
    let app_key = c
        .put("/v1/channels/app", &json!({"name": "App"}))
        .expect(201)["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let app = c.with_token(Some(&app_key));
    let res = web.reserve("web", "tent", 5, None).expect(201);
    let id = res["id"].as_str().unwrap();
    let short = app.reserve("app", "tent", 1, None);
    let body = short.problem(409, "insufficient-stock");
    assert_eq!(
        body["lines"],
        json!([{"sku": "tent", "requested": 1, "available": 0}])
    );
    app.delete(&format!("/v1/reservations/{id}"))
        .problem(404, "not-found");
    web.delete(&format!("/v1/reservations/{id}")).expect(204);
    web.delete(&format!("/v1/reservations/{id}"))
        .problem(404, "not-found");
    assert_eq!(stock(&c, "tent", None)["available"], 5);
    // A storefront never sees another channel's orders.
    let order = web
        .order("k", &order_body(json!([{"sku": "tent", "qty": 1}])))
        .expect(201);
    app.get(&format!("/v1/orders/{}", order["id"].as_str().unwrap()))
        .problem(404, "not-found");
    assert_eq!(listed(&app, "/v1/orders"), 0);
}

#[test]
fn checkout_bad_input_is_refused_and_changes_nothing() {
    let d = Daemon::start();
    let c = d.client();
    let web = c.with_token(Some(&seed(&c, "tent", 5, 0)));
    let before = event_count(&c);
    let reserve = |lines: Value, ttl: Value| {
        web.post(
            "/v1/reservations",
            &json!({"channel": "web", "lines": lines, "ttl_s": ttl}),
        )
    };
    reserve(json!([{"sku": "tent", "qty": 0}]), json!(900)).problem(422, "invalid");
    reserve(json!([{"sku": "tent", "qty": 10_001}]), json!(900)).problem(422, "invalid");
    reserve(json!([{"sku": "tent", "qty": -1}]), json!(900)).problem(422, "invalid");
    reserve(json!([{"sku": "tent", "qty": 1}]), json!(0)).problem(422, "invalid");
    reserve(json!([{"sku": "tent", "qty": 1}]), json!(86_401)).problem(422, "invalid");
    reserve(json!([{"sku": "nope", "qty": 1}]), json!(900)).problem(422, "invalid");
    reserve(json!([]), json!(900)).problem(422, "invalid");
    reserve(
        json!([{"sku": "tent", "qty": 1}, {"sku": "nope", "qty": 1}]),
        json!(900),
    )
    .problem(422, "invalid");
    let body = order_body(json!([{"sku": "tent", "qty": 1}]));
    web.raw(
        "POST",
        "/v1/orders",
        Some(("application/json", body.to_string().into_bytes())),
        &[],
    )
    .problem(400, "bad-request");
    web.order(&"k".repeat(256), &body)
        .problem(400, "bad-request");
    let unknown = json!({"channel": "web", "reservation": "res_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "customer": {"ref": "c"}, "ship_to": ship_to()});
    web.order("k1", &unknown)
        .problem(409, "reservation-expired");
    let mut bad_country = body.clone();
    bad_country["ship_to"]["country"] = json!("usa");
    web.order("k2", &bad_country).problem(422, "invalid");
    let both = json!({"channel": "web", "reservation": "res_x", "lines": [{"sku": "tent", "qty": 1}],
        "customer": {"ref": "c"}, "ship_to": ship_to()});
    web.order("k3", &both).problem(422, "invalid");
    web.order("k4", &order_body(json!([{"sku": "tent", "qty": 6}])))
        .problem(409, "insufficient-stock");

    assert_eq!(units(&c, "tent", None), (0, 0, 5));
    assert_eq!(event_count(&c), before);
    assert_eq!(listed(&c, "/v1/orders"), 0);
}

#[test]
fn an_expired_reservation_releases_its_stock_by_itself() {
    let d = InProc::start();
    let c = d.client();
    let web = c.with_token(Some(&seed(&c, "tent", 3, 0)));
    let res = web.reserve("web", "tent", 3, Some(60)).expect(201);
    assert_eq!(res["expires_at"], "2026-11-22T10:01:00Z");
    assert_eq!(stock(&c, "tent", None)["available"], 0);
    d.clock.advance_ms(59_999);
    let body = json!({"channel": "web", "reservation": res["id"], "customer": {"ref": "c"}, "ship_to": ship_to()});
    // Still held one millisecond before expiry; then it goes by itself.
    assert_eq!(stock(&c, "tent", None)["reserved"], 3);
    d.clock.advance_ms(1);
    eventually(
        Duration::from_secs(10),
        "the sweeper to release the hold",
        || stock(&c, "tent", None)["available"] == 3,
    );
    web.order("k", &body).problem(409, "reservation-expired");
    assert_eq!(stock(&c, "tent", None)["available"], 3);
}

#[test]
fn an_expired_reservation_is_refused_at_order_time_even_before_the_sweep() {
    let d = InProc::start();
    let c = d.client();
    let web = c.with_token(Some(&seed(&c, "tent", 3, 0)));
    let res = web.reserve("web", "tent", 2, Some(1)).expect(201);
    d.clock.advance_ms(1_000);
    let body = json!({"channel": "web", "reservation": res["id"], "customer": {"ref": "c"}, "ship_to": ship_to()});
    let p = web.order("k", &body).problem(409, "reservation-expired");
    assert!(p["detail"].as_str().unwrap().contains("expired"));
    assert_eq!(stock(&c, "tent", None)["available"], 3);
}

/// A thousand clients race for 100 units: exactly 100 sell, and the store agrees
/// after a restart.
#[test]
fn a_thousand_clients_never_oversell() {
    const CLIENTS: usize = 1000;
    const UNITS: u32 = 100;
    let d = Daemon::start();
    let c = d.client();
    let key = seed(&c, "hot", UNITS, 0);
    let start = Arc::new(Barrier::new(CLIENTS));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let web = c.with_token(Some(&key));
            let start = start.clone();
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    start.wait();
                    // Half order straight from lines, half reserve first.
                    if i % 2 == 0 {
                        return web.order(&format!("k-{i}"), &order_body(json!([{"sku": "hot", "qty": 1}]))).status;
                    }
                    let res = web.reserve("web", "hot", 1, None);
                    if res.status != 201 {
                        return res.status;
                    }
                    let body = json!({"channel": "web", "reservation": res.body["id"], "customer": {"ref": "c"},
                        "ship_to": ship_to()});
                    web.order(&format!("k-{i}"), &body).status
                })
                .unwrap()
        })
        .collect();
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for t in threads {
        *by_status.entry(t.join().unwrap()).or_default() += 1;
    }
    assert_eq!(
        by_status.get(&201),
        Some(&(UNITS as usize)),
        "{by_status:?}"
    );
    assert_eq!(
        by_status.get(&409),
        Some(&(CLIENTS - UNITS as usize)),
        "{by_status:?}"
    );
    assert_eq!(units(&c, "hot", None), (0, 100, 0));

    let d = d.restart();
    let c = d.client();
    let s = stock(&c, "hot", None);
    assert_eq!(
        (s["allocated"].as_u64(), s["available"].as_u64()),
        (Some(100), Some(0))
    );
    let orders = c.get("/v1/orders?limit=1000").expect(200);
    assert_eq!(orders["items"].as_array().unwrap().len(), UNITS as usize);
}

/// SIGKILL while clients place orders: every order that got a 201 is there exactly
/// once after the restart, and retrying its key answers the same order.
#[test]
fn orders_answered_before_a_crash_survive_it_exactly_once() {
    const CLIENTS: usize = 8;
    let mut d = Daemon::start();
    let c = d.client();
    let key = seed(&c, "tent", 1_000_000, 0);
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let go = Arc::new(Barrier::new(CLIENTS + 1));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let web = c.with_token(Some(&key));
            let (acked, go) = (acked.clone(), go.clone());
            std::thread::spawn(move || {
                go.wait();
                for i in 0.. {
                    let k = format!("crash-{t}-{i}");
                    match web.try_order(&k, &order_body(json!([{"sku": "tent", "qty": 1}]))) {
                        Ok(r) if r.status == 201 => {
                            acked
                                .lock()
                                .unwrap()
                                .insert(k, r.body["id"].as_str().unwrap().to_owned());
                        }
                        // The daemon is gone: the connection failed.
                        _ => return i,
                    }
                }
                unreachable!()
            })
        })
        .collect();
    go.wait();
    // Let some orders be answered, then crash with requests in flight.
    eventually(Duration::from_secs(60), "50 acknowledged orders", || {
        acked.lock().unwrap().len() >= 50
    });
    d.kill();
    let attempted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 50 && attempted >= acked.len());

    let _dir = d.take_dir();
    // The store a crash leaves behind satisfies every invariant.
    let check = check_store(&d.data);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let d = Daemon::start_in(&d.data);
    let c = d.client();
    let web = c.with_token(Some(&key));
    for (k, id) in &acked {
        assert_eq!(web.get(&format!("/v1/orders/{id}")).expect(200)["id"], *id);
        let again = web
            .order(k, &order_body(json!([{"sku": "tent", "qty": 1}])))
            .expect(200);
        assert_eq!(again["id"], *id, "retrying {k} made another order");
    }
    let mut ids = BTreeSet::new();
    let mut cursor = String::new();
    loop {
        let page = c.get(&format!("/v1/orders?limit=1000{cursor}")).expect(200);
        for o in page["items"].as_array().unwrap() {
            assert!(ids.insert(o["id"].as_str().unwrap().to_owned()));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    // Committed-but-unanswered orders may exist; acknowledged ones all do.
    assert!(ids.len() >= acked.len());
    assert!(acked.values().all(|id| ids.contains(id)));
    assert_eq!(
        stock(&c, "tent", None)["allocated"].as_u64(),
        Some(ids.len() as u64)
    );
    drop(d);
}

/// SKU tent with 5 units, a reservation of `lines` of it, then the supplier reports
/// 1 unit: ordering the reservation is refused. Returns the daemon, the operator's
/// and the channel's clients, the refused order's body and the refusal.
fn refused_after_stock_drops(lines: Value) -> (Daemon, Client, Client, Value, Value) {
    let d = Daemon::start();
    let c = d.client();
    let web = c.with_token(Some(&seed(&c, "tent", 5, 0)));
    let reservation = json!({"channel": "web", "lines": lines});
    let res = web.post("/v1/reservations", &reservation).expect(201);
    c.post(
        "/v1/suppliers/acme/stock",
        &json!({"items": [{"sku": "tent", "on_hand": 1}]}),
    )
    .expect(200);
    let body = json!({"channel": "web", "reservation": res["id"], "customer": {"ref": "c"},
        "ship_to": ship_to()});
    let refused = web.order("k", &body).problem(409, "insufficient-stock");
    (d, c, web, body, refused)
}

/// A refusal names each short SKU once, with everything its lines asked for.
#[test]
fn a_refusal_sums_the_lines_of_one_sku() {
    let lines = json!([{"sku": "tent", "qty": 2}, {"sku": "tent", "qty": 1}]);
    let (_d, _c, _web, _body, refused) = refused_after_stock_drops(lines);
    assert_eq!(
        refused["lines"],
        json!([{"sku": "tent", "requested": 3, "available": 1}])
    );
}

/// An order refused after its reservation was claimed leaves the reservation as it
/// was: a refused request changes nothing.
#[test]
fn a_refused_order_keeps_its_reservation() {
    // The supplier's report drops below what is held: routing can no longer cover it.
    let lines = json!([{"sku": "tent", "qty": 2}]);
    let (_d, c, web, body, refused) = refused_after_stock_drops(lines);
    assert_eq!(
        refused["lines"],
        json!([{"sku": "tent", "requested": 2, "available": 1}])
    );
    assert_eq!(
        stock(&c, "tent", None)["reserved"],
        2,
        "the hold is still there"
    );
    // Stock comes back: the same reservation can still be ordered.
    c.post(
        "/v1/suppliers/acme/stock",
        &json!({"items": [{"sku": "tent", "on_hand": 5}]}),
    )
    .expect(200);
    let order = web.order("k2", &body).expect(201);
    assert_eq!(order["lines"][0]["qty"], 2);
    let s = stock(&c, "tent", None);
    assert_eq!(
        (s["reserved"].as_u64(), s["allocated"].as_u64()),
        (Some(0), Some(2))
    );
}

#[test]
fn a_retry_is_answered_with_its_order_even_once_the_stock_is_gone() {
    let d = Daemon::start();
    let c = d.client();
    let web = c.with_token(Some(&seed(&c, "tent", 4, 0)));
    let body = order_body(json!([{"sku": "tent", "qty": 2}]));
    let first = web.order("k", &body).expect(201);
    assert_eq!(units(&c, "tent", None), (0, 2, 2));

    // While stock remains, a retry takes units on its way to the writer, which
    // answers the first order: the units come back.
    assert_eq!(web.order("k", &body).expect(200)["id"], first["id"]);
    assert_eq!(units(&c, "tent", None), (0, 2, 2));

    // The last units go to another order.
    web.order("k-other", &body).expect(201);
    assert_eq!(units(&c, "tent", None), (0, 4, 0));

    // The first request spaced and ordered differently, with no unit left to take:
    // still its order, and nothing moves.
    let respelled = format!(
        r#"{{ "ship_to": {}, "customer": {{"email": "a@example.com", "ref": "cust-42"}},
             "lines": [ {{"qty": 2, "sku": "tent"}} ], "channel": "web" }}"#,
        ship_to()
    );
    let again = web
        .raw(
            "POST",
            "/v1/orders",
            Some(("application/json", respelled.into_bytes())),
            &[("Idempotency-Key", "k")],
        )
        .expect(200);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(units(&c, "tent", None), (0, 4, 0));
    // A new key for the same lines finds no stock.
    web.order("k-third", &body)
        .problem(409, "insufficient-stock");
    assert_eq!(listed(&c, "/v1/orders"), 2);
}

#[test]
fn a_retry_is_answered_from_the_store_while_the_writer_is_full() {
    let d = InProc::start_with(|config| config.limits.write_queue_max = 2);
    let c = d.client();
    let web = c.with_token(Some(&seed(&c, "tent", 10, 0)));
    let body = order_body(json!([{"sku": "tent", "qty": 2}]));
    let first = web.order("k", &body).expect(201);

    // Hold the writer inside a command, then fill its queue behind it (with two
    // commands, or one beside the dispatcher's).
    let (running_tx, running_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let writer = d.app.writer.clone();
    let holder = std::thread::spawn(move || {
        writer.write_blocking(move |_tx| {
            running_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            Ok::<_, marketd::problem::Problem>(())
        })
    });
    running_rx.recv().unwrap();
    let fillers: Vec<_> = (0..2)
        .map(|_| {
            let writer = d.app.writer.clone();
            std::thread::spawn(move || {
                writer.write_blocking(|_tx| Ok::<_, marketd::problem::Problem>(()))
            })
        })
        .collect();
    eventually(Duration::from_secs(10), "the queue to fill", || {
        d.app.writer.queued() == 2
    });

    // A new order cannot be taken now; the retry of the first is still answered.
    web.order("k-new", &body).problem(503, "busy");
    assert_eq!(web.order("k", &body).expect(200)["id"], first["id"]);

    release_tx.send(()).unwrap();
    holder.join().unwrap().unwrap();
    for f in fillers {
        // A filler may have found the queue already full: the dispatcher records
        // its delivery attempts through the same queue.
        let _ = f.join().unwrap();
    }
    // Neither the refused order nor the retry kept any units.
    assert_eq!(units(&c, "tent", None), (0, 2, 8));
}
