//! Suppliers, SKUs, offers, channels, stock uploads: the operator's walkthrough,
//! restarts, credentials, and bad input leaving the store unchanged.

use serde_json::json;

use crate::support::*;

#[test]
fn walkthrough_supplier_sku_offer_upload_and_stock_read() {
    let d = Daemon::start();
    let c = d.client();
    let created = c
        .put("/v1/suppliers/acme", &supplier_body("Acme Outdoor"))
        .expect(201);
    assert_eq!(created["status"], "pending");
    let secret = created["webhook_secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    // The secret is shown once: not on reads, not on updates.
    let read = c.get("/v1/suppliers/acme").expect(200);
    assert!(read.get("webhook_secret").is_none());
    let updated = c
        .put("/v1/suppliers/acme", &supplier_body("Acme Outdoor Ltd"))
        .expect(200);
    assert!(updated.get("webhook_secret").is_none());
    assert_eq!(updated["name"], "Acme Outdoor Ltd");
    assert_eq!(
        c.post_empty("/v1/suppliers/acme/approve").expect(200)["status"],
        "approved"
    );
    let rotated = c.post_empty("/v1/suppliers/acme/rotate-secret").expect(200);
    assert_ne!(rotated["webhook_secret"].as_str().unwrap(), secret);

    let sku = json!({"product": "tent-2p", "title": "2P tent, green", "attributes": {"color": "green"},
        "price": 19900, "safety_stock": 1});
    c.put("/v1/skus/tent-2p-green", &sku).expect(201);
    c.put(
        "/v1/skus/tent-2p-blue",
        &json!({"product": "tent-2p", "title": "2P tent, blue", "price": 19900}),
    )
    .expect(201);
    c.put(
        "/v1/skus/mat",
        &json!({"product": "mat", "title": "Mat", "price": 2500}),
    )
    .expect(201);
    let variants = c.get("/v1/skus?product=tent-2p").expect(200);
    let names: Vec<&str> = variants["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sku"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["tent-2p-blue", "tent-2p-green"]);

    c.put(
        "/v1/skus/tent-2p-green/offers/acme",
        &json!({"supplier_sku": "AC-TENT-G", "priority": 10}),
    )
    .expect(201);
    c.put(
        "/v1/skus/tent-2p-green/offers/acme",
        &json!({"supplier_sku": "AC-TENT-G", "priority": 5}),
    )
    .expect(200);
    let offers = c.get("/v1/skus/tent-2p-green/offers").expect(200);
    assert_eq!(offers["items"][0]["priority"], 5);

    let upload = c.post(
        "/v1/suppliers/acme/stock",
        &json!({"as_of": "2026-11-22T10:00:00Z",
        "items": [{"supplier_sku": "AC-TENT-G", "on_hand": 12}]}),
    );
    assert_eq!(upload.expect(200)["applied"], 1);
    let web = c
        .put(
            "/v1/channels/web",
            &json!({"name": "Web store", "buffer_units": 2}),
        )
        .expect(201);
    assert!(web["api_key"].as_str().unwrap().len() > 20);
    assert!(
        web["webhook_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );

    let s = stock(&c, "tent-2p-green", Some("web"));
    assert_eq!(s["on_hand"], 12);
    assert_eq!(s["safety_stock"], 1);
    assert_eq!(s["channel_buffer"], 2);
    assert_eq!(s["available"], 9);
    assert_eq!(s["suppliers"][0]["supplier"], "acme");
    assert_eq!(s["suppliers"][0]["as_of"], "2026-11-22T10:00:00Z");
    assert_eq!(stock(&c, "tent-2p-green", None)["available"], 11);

    // CSV replaces the count; an older as_of is ignored.
    let csv = c.raw(
        "POST",
        "/v1/suppliers/acme/stock?as_of=2026-11-22T11:00:00Z",
        Some(("text/csv", b"supplier_sku,on_hand\nAC-TENT-G,7\n".to_vec())),
        &[],
    );
    assert_eq!(csv.expect(200)["applied"], 1);
    let stale = c
        .post(
            "/v1/suppliers/acme/stock",
            &json!({"as_of": "2026-11-22T09:00:00Z",
        "items": [{"sku": "tent-2p-green", "on_hand": 100}]}),
        )
        .expect(200);
    assert_eq!(stale["stale"], 1);
    assert_eq!(stock(&c, "tent-2p-green", None)["on_hand"], 7);

    // A suspended supplier's stock stops counting at once.
    c.post_empty("/v1/suppliers/acme/suspend").expect(200);
    assert_eq!(stock(&c, "tent-2p-green", None)["on_hand"], 0);
    c.post_empty("/v1/suppliers/acme/approve").expect(200);
    assert_eq!(stock(&c, "tent-2p-green", None)["on_hand"], 7);

    let events = c.get("/v1/events?limit=1000").expect(200);
    let types: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for t in [
        "supplier.created",
        "supplier.approved",
        "supplier.secret_rotated",
        "sku.created",
        "offer.created",
        "stock.reported",
        "channel.created",
        "supplier.suspended",
    ] {
        assert!(types.contains(&t), "no {t} event in {types:?}");
    }
    let seqs: Vec<u64> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "seq grows by one"
    );
    let page = c.get("/v1/events?after=2&limit=2").expect(200);
    assert_eq!(page["items"][0]["seq"], 3);
    assert_eq!(page["next_cursor"], "4");
}

#[test]
fn a_restart_keeps_everything() {
    let d = Daemon::start();
    let c = d.client();
    let key = seed(&c, "tent", 12, 2);
    c.put("/v1/channels/web/listings/L-1", &json!({"sku": "tent"}))
        .expect(201);
    let order = c.with_token(Some(&key)).order(
        "k-1",
        &json!({"channel": "web",
        "lines": [{"listing": "L-1", "qty": 3}], "customer": {"ref": "c"}, "ship_to": ship_to()}),
    );
    let order = order.expect(201);
    // Background delivery attempts may add events later; compare what was there.
    let events_before = c.get("/v1/events?limit=1000").expect(200)["items"].clone();
    let token = d.token.clone();

    let d = d.restart();
    assert_eq!(d.token, token, "the operator token survives");
    let c = d.client();
    assert_eq!(
        c.get("/v1/suppliers/acme").expect(200)["status"],
        "approved"
    );
    assert_eq!(c.get("/v1/skus/tent").expect(200)["price"], 19900);
    let s = stock(&c, "tent", Some("web"));
    assert_eq!(
        (
            s["on_hand"].as_u64(),
            s["allocated"].as_u64(),
            s["available"].as_u64()
        ),
        (Some(12), Some(3), Some(7))
    );
    let web = c.with_token(Some(&key));
    assert_eq!(
        web.get(&format!("/v1/orders/{}", order["id"].as_str().unwrap()))
            .expect(200),
        order
    );
    // The listing and the channel's key still work after the restart.
    web.post(
        "/v1/reservations",
        &json!({"channel": "web", "lines": [{"listing": "L-1", "qty": 1}]}),
    )
    .expect(201);
    let after = c.get("/v1/events?limit=1000").expect(200)["items"].clone();
    assert_eq!(
        after.as_array().unwrap()[..events_before.as_array().unwrap().len()],
        events_before.as_array().unwrap()[..]
    );
}

#[test]
fn credentials_and_scopes() {
    let d = Daemon::start();
    let c = d.client();
    let key = seed(&c, "tent", 5, 0);
    let anon = d.anonymous();
    anon.get("/v1/suppliers").problem(401, "unauthorized");
    c.with_token(Some("mko_wrong"))
        .get("/v1/suppliers")
        .problem(401, "unauthorized");
    let web = c.with_token(Some(&key));
    web.get("/v1/suppliers").problem(403, "forbidden");
    web.put(
        "/v1/skus/x",
        &json!({"product": "p", "title": "t", "price": 1}),
    )
    .problem(403, "forbidden");
    assert_eq!(web.get("/v1/stock/tent").expect(200)["channel"], "web");
    c.put("/v1/channels/app", &json!({"name": "App"}))
        .expect(201);
    web.get("/v1/stock/tent?channel=app")
        .problem(403, "forbidden");
    web.reserve("app", "tent", 1, None)
        .problem(403, "forbidden");
    assert_eq!(anon.get("/healthz").expect(200)["status"], "ok");
    assert_eq!(anon.get("/metrics").status, 200);
    // Nothing refused above left a trace in the stock.
    assert_eq!(stock(&c, "tent", None)["reserved"], 0);
}

#[test]
fn bad_input_gets_a_problem_and_changes_nothing() {
    let d = Daemon::start();
    let c = d.client();
    seed(&c, "tent", 10, 0);
    let before = event_count(&c);
    let supplier_before = c.get("/v1/suppliers/acme").expect(200);

    c.raw(
        "PUT",
        "/v1/suppliers/acme",
        Some(("application/json", b"{\"name\": ".to_vec())),
        &[],
    )
    .problem(400, "bad-request");
    let mut unknown = supplier_body("X");
    unknown["colour"] = json!("red");
    c.put("/v1/suppliers/acme", &unknown)
        .problem(422, "invalid");
    let mut negative = supplier_body("X");
    negative["commission_bps"] = json!(-5);
    c.put("/v1/suppliers/acme", &negative)
        .problem(422, "invalid");
    let mut too_much = supplier_body("X");
    too_much["commission_bps"] = json!(10_001);
    c.put("/v1/suppliers/acme", &too_much)
        .problem(422, "invalid");
    c.put("/v1/suppliers/has%20space", &supplier_body("X"))
        .problem(400, "bad-request");
    c.put(
        &format!("/v1/suppliers/{}", "x".repeat(129)),
        &supplier_body("X"),
    )
    .problem(400, "bad-request");
    c.raw(
        "PUT",
        "/v1/suppliers/acme",
        Some(("text/plain", b"hi".to_vec())),
        &[],
    )
    .problem(415, "unsupported-media-type");
    c.put(
        "/v1/skus/tent",
        &json!({"product": "tent-2p", "title": "t", "price": -1}),
    )
    .problem(422, "invalid");
    c.put(
        "/v1/skus/tent/offers/nobody",
        &json!({"supplier_sku": "N-1"}),
    )
    .problem(404, "not-found");
    c.put(
        "/v1/channels/web",
        &json!({"name": "Web", "buffer_pct": 101}),
    )
    .problem(422, "invalid");

    // A 2 MiB body is refused: by its declared length before it is read, and
    // without a declared length as soon as the bytes read pass 1 MiB.
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(2 << 20));
    let head = format!(
        "PUT /v1/suppliers/acme HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
        content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        d.token,
        big.len()
    );
    let (status, body) = raw_exchange(&c.base, &head, big.as_bytes());
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("/problems/payload-too-large"));
    let mut chunked = format!(
        "PUT /v1/suppliers/acme HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
        content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
        d.token
    )
    .into_bytes();
    for chunk in big.as_bytes().chunks(64 * 1024) {
        chunked.extend(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend(chunk);
        chunked.extend(b"\r\n");
    }
    chunked.extend(b"0\r\n\r\n");
    assert_eq!(raw_exchange(&c.base, "", &chunked).0, 413);

    // Uploads are all or nothing: one bad row refuses every row.
    let bad = c.post(
        "/v1/suppliers/acme/stock",
        &json!({"items": [
        {"sku": "tent", "on_hand": 3}, {"sku": "tent-unknown", "on_hand": 1}]}),
    );
    let body = bad.problem(422, "invalid");
    assert_eq!(body["errors"][0]["line"], 2);
    let csv = c.raw(
        "POST",
        "/v1/suppliers/acme/stock",
        Some(("text/csv", b"sku,on_hand\ntent,4\ntent,-1\n".to_vec())),
        &[],
    );
    assert_eq!(csv.problem(422, "invalid")["errors"][0]["line"], 3);

    c.get("/v1/nowhere").problem(404, "not-found");
    c.raw("PATCH", "/v1/skus/tent", None, &[])
        .problem(405, "method-not-allowed");
    c.get("/v1/events?limit=0").problem(400, "bad-request");
    c.get("/v1/events?limit=abc").problem(400, "bad-request");

    assert_eq!(event_count(&c), before, "a refused request wrote no event");
    assert_eq!(c.get("/v1/suppliers/acme").expect(200), supplier_before);
    assert_eq!(stock(&c, "tent", None)["on_hand"], 10);
    assert_eq!(c.get("/v1/channels/web").expect(200)["buffer_pct"], 0);
}

#[test]
fn concurrent_writers_all_land() {
    let d = Daemon::start();
    let c = d.client();
    let threads: Vec<_> = (0..32)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..20 {
                    c.put(
                        &format!("/v1/skus/sku-{t}-{i}"),
                        &json!({"product": format!("p{t}"),
                        "title": "t", "price": i}),
                    )
                    .expect(201);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut seen = 0;
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor.map(|c| format!("&cursor={c}")).unwrap_or_default();
        let page = c.get(&format!("/v1/skus?limit=100{q}")).expect(200);
        seen += page["items"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, 32 * 20);
    assert_eq!(event_count(&c), 32 * 20);
}
