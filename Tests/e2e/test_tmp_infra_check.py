import os, requests
def test_health_all():
    for k in ["PETS_ORDER_URL","PETS_NOTIFIER_URL","PETS_INVENTORY_URL","PETS_PAYMENT_URL","PETS_ORCHESTRATOR_URL"]:
        assert requests.get(os.environ[k] + "/health").status_code == 200
def test_env():
    assert os.environ["PETS_PG_PORT"] == "45432" and os.environ["PETS_TEST_AMQP_URL"] == "amqp://guest:guest@127.0.0.1:45672/"
    assert len(os.environ["PETS_PW_ORDERS"]) == 64
def test_fail_on_purpose():
    assert os.environ.get("MAKE_FAIL") != "1"
