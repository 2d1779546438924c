//! Folders over the content service against real PostgreSQL and SecantusDB: faculty arrange a
//! course's items in nested folders; a folder grants nothing, so a student lists only folders of
//! their courses and finds only items they could see anyway; deleting a folder keeps its items.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};

use crate::common::content::*;

fn json_req(method: &str, uri: &str, body: Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn folders_arrange_items_without_widening_who_sees_them() {
    let env = ContentEnv::start(8 << 20).await;
    let faculty = caller("fac-1", &["faculty"]);
    let (mine, other) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    env.enrol("stu-1", mine).await;
    let student = caller("stu-1", &["student"]);

    let item = |course: uuid::Uuid, published: bool| {
        let meta = json!({"title": "Notes", "course_ids": [course.to_string()], "is_published": published});
        upload_request(
            "/api/v1/content",
            Body::from(multipart(Some(&meta.to_string()), "n.pdf", "application/pdf", &pdf_bytes(4096))),
            None,
        )
    };
    let published =
        body_json(env.call(Some(&faculty), item(mine, true)).await).await["id"].as_str().unwrap().to_owned();
    let draft = body_json(env.call(Some(&faculty), item(mine, false)).await).await["id"].as_str().unwrap().to_owned();

    let week = env
        .call(
            Some(&faculty),
            json_req("POST", "/api/v1/content-folders", json!({"name": "Week 1", "course_id": mine.to_string()})),
        )
        .await;
    assert_eq!(week.status(), StatusCode::CREATED);
    let week = body_json(week).await;
    let week_id = week["id"].as_str().unwrap().to_owned();
    let slides = body_json(
        env.call(
            Some(&faculty),
            json_req("POST", "/api/v1/content-folders", json!({"name": "Slides", "parent_id": week_id})),
        )
        .await,
    )
    .await;
    assert_eq!(slides["course_id"], mine.to_string(), "a subfolder belongs to its parent's course");
    let foreign = body_json(
        env.call(
            Some(&faculty),
            json_req("POST", "/api/v1/content-folders", json!({"name": "Elsewhere", "course_id": other.to_string()})),
        )
        .await,
    )
    .await;

    for id in [&published, &draft] {
        let put = env
            .call(
                Some(&faculty),
                json_req("PUT", &format!("/api/v1/content-folders/{week_id}/items"), json!({"content_id": id})),
            )
            .await;
        assert_eq!(put.status(), StatusCode::NO_CONTENT);
    }
    let again = env
        .call(
            Some(&faculty),
            json_req("PUT", &format!("/api/v1/content-folders/{week_id}/items"), json!({"content_id": published})),
        )
        .await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT, "adding twice changes nothing");
    assert_eq!(
        body_json(env.call(Some(&faculty), get(&format!("/api/v1/content-folders/{week_id}"))).await).await["item_count"],
        2
    );

    // The student: their course's folders only, and in them only what they may see.
    let listed = body_json(env.call(Some(&student), get("/api/v1/content-folders?top_level=true")).await).await;
    let names: Vec<&str> = listed["items"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Week 1"], "{listed}");
    let hidden =
        env.call(Some(&student), get(&format!("/api/v1/content-folders/{}", foreign["id"].as_str().unwrap()))).await;
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
    let in_folder =
        body_json(env.call(Some(&student), get(&format!("/api/v1/content?folder_id={week_id}"))).await).await;
    let ids: Vec<&str> = in_folder["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [published.as_str()], "the draft stays invisible inside a visible folder");
    let write = env.call(Some(&student), json_req("POST", "/api/v1/content-folders", json!({"name": "Mine"}))).await;
    assert_eq!(write.status(), StatusCode::FORBIDDEN);

    // Bad input.
    for (body, field) in [(json!({"name": ""}), "name"), (json!({"name": "a\u{0}b"}), "name")] {
        let res = env.call(Some(&faculty), json_req("POST", "/api/v1/content-folders", body)).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(body_json(res).await["details"]["fields"][0]["field"], field);
    }
    let orphan = env
        .call(
            Some(&faculty),
            json_req("POST", "/api/v1/content-folders", json!({"name": "x", "parent_id": uuid::Uuid::new_v4()})),
        )
        .await;
    assert_eq!(orphan.status(), StatusCode::NOT_FOUND);
    let traversal = env.call(Some(&faculty), get("/api/v1/content-folders/..%2F..%2Fetc")).await;
    assert_eq!(traversal.status(), StatusCode::BAD_REQUEST);

    // Deleting the folder removes the subfolder, keeps the items.
    let del = env
        .call(
            Some(&faculty),
            Request::delete(format!("/api/v1/content-folders/{week_id}")).body(Body::empty()).unwrap(),
        )
        .await;
    assert_eq!(del.status(), StatusCode::NO_CONTENT);
    let sub =
        env.call(Some(&faculty), get(&format!("/api/v1/content-folders/{}", slides["id"].as_str().unwrap()))).await;
    assert_eq!(sub.status(), StatusCode::NOT_FOUND);
    assert_eq!(env.call(Some(&faculty), get(&format!("/api/v1/content/{published}"))).await.status(), StatusCode::OK);
    env.stop().await;
}
