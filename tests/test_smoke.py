from tests.factories.codes import CLIENT, make_batch


async def test_a_batch_issues_a_code(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=1)
    response = await client.post(
        "/api/v1/code/redeem",
        json={
            "batchid": str(batch.id),
            "clientid": str(CLIENT),
            "customerid": "50b0b41b-c665-4409-a2bb-a4fc18828dc2",
        },
        headers=auth,
    )
    assert response.status_code == 200, response.text
    assert response.json()["code"].endswith("-0")
