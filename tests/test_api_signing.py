"""Request signing of the four platform API clients, against published examples and
against digests computed here by hand from each platform's written rule (never only
against our own signer)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.douyin import api as douyin
from connectors.jd import api as jd
from connectors.pinduoduo import api as pdd
from connectors.taobao import api as taobao
from hub.settings import Shop

# 2016-01-01 04:00:00 UTC is 12:00:00 in Beijing
CLOCK = datetime(2016, 1, 1, 4, 0, 0, tzinfo=UTC)


def shop(platform: str, **options: object) -> Shop:
    return Shop(
        name=f"s-{platform}",
        platform=platform,
        secret="helloworld",
        app_key="12345678",
        api_base="http://fake.test",
        options={"access_token": "test", **options},
    )


def md5_upper(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest().upper()


# --- Taobao TOP ----------------------------------------------------------------------


def test_taobao_published_example_helloworld() -> None:
    # TOP doc 101617 example, as reproduced by independent SDK test suites
    params = {
        "method": "taobao.item.seller.get",
        "app_key": "12345678",
        "session": "test",
        "timestamp": "2016-01-01 12:00:00",
        "format": "json",
        "v": "2.0",
        "sign_method": "md5",
        "fields": "num_iid,title,nick,price,num",
        "num_iid": "11223344",
    }
    assert taobao.sign(params, "helloworld", "md5") == "66987CB115214E59E6EC978214934FB8"


def test_taobao_published_example_test() -> None:
    params = {
        "method": "taobao.user.seller.get",
        "format": "xml",
        "app_key": "test",
        "v": "2.0",
        "fields": "nick",
        "sign_method": "md5",
        "timestamp": "2013-05-06 13:52:03",
        "session": "test",
    }
    assert taobao.sign(params, "test", "md5") == "72CB4D809B375A54502C09360D879C64"


def test_taobao_hmac_variants_and_ordinal_key_order() -> None:
    params = {"app_key": "k", "Zflag": "1", "b": "中文", "empty": "", "sign": "ignored"}
    # ordinal order puts 'Zflag' before 'app_key'; empty values and sign are left out
    text = "Zflag1app_keykb中文"
    key = b"sec"
    assert (
        taobao.sign(params, "sec", "hmac")
        == hmac.new(key, text.encode(), "md5").hexdigest().upper()
    )
    assert (
        taobao.sign(params, "sec", "hmac-sha256")
        == hmac.new(key, text.encode(), "sha256").hexdigest().upper()
    )
    assert taobao.sign(params, "sec", "md5") == md5_upper("sec" + text + "sec")
    with pytest.raises(ValueError):
        taobao.sign(params, "sec", "sha1")


def test_taobao_request_on_the_wire() -> None:
    client = taobao.Client(shop("taobao", sign_method="md5"), clock=lambda: CLOCK)
    request = client.build_request(
        "taobao.logistics.offline.send",
        {"tid": "4011234567890123456", "out_sid": "SF123", "company_code": "SF"},
    )
    assert request.method == "POST"
    assert request.url.path == "/router/rest"
    query = dict(request.url.params)
    form = dict(parse_qsl(request.content.decode()))
    assert query["timestamp"] == "2016-01-01 12:00:00"  # GMT+8, whatever the host zone
    assert query["session"] == "test" and query["v"] == "2.0" and query["format"] == "json"
    assert form == {"tid": "4011234567890123456", "out_sid": "SF123", "company_code": "SF"}
    expected = md5_upper(
        "helloworld"
        "app_key12345678company_codeSFformatjsonmethodtaobao.logistics.offline.send"
        "out_sidSF123sessiontestsign_methodmd5tid4011234567890123456"
        "timestamp2016-01-01 12:00:00v2.0"
        "helloworld"
    )
    assert query["sign"] == expected


def test_taobao_default_is_hmac_sha256_like_the_java_sdk() -> None:
    client = taobao.Client(shop("taobao"), clock=lambda: CLOCK)
    query = dict(client.build_request("taobao.time.get", {}).url.params)
    assert query["sign_method"] == "hmac-sha256"
    assert len(query["sign"]) == 64 and query["sign"] == query["sign"].upper()


# --- JD JOS --------------------------------------------------------------------------


def test_jd_published_example() -> None:
    # JOS dev guide (listId=2643) example, as transcribed by independent clients
    params = {
        "360buy_param_json": '{"end_date":null,"optional_fields":null,"order_state":'
        '"WAIT_SELLER_STOCK_OUT","page":"1","page_size":"200","start_date":null}',
        "access_token": "yourtoken",
        "app_key": "yourappkey",
        "method": "jingdong.pop.order.search",
        "timestamp": "2021-05-07 09:20:39.683+0800",
        "v": "2.0",
    }
    assert jd.sign(params, "yourappSecret") == "D70825340F4084360B9362B60DFD7930"


def test_jd_request_on_the_wire() -> None:
    client = jd.Client(shop("jd"), clock=lambda: CLOCK)
    request = client.build_request(
        jd.SHIP, {"orderId": 123, "logiCoprId": "2100", "logiNo": "单号1"}
    )
    assert request.url.path == "/routerjson"
    query = dict(request.url.params)
    form = dict(parse_qsl(request.content.decode()))
    body = '{"logiCoprId":"2100","logiNo":"单号1","orderId":123}'  # sorted, compact, raw UTF-8
    assert form == {"360buy_param_json": body}
    assert "sign_method" not in query  # md5 is the default and is not sent
    assert query["timestamp"] == "2016-01-01 12:00:00"
    expected = md5_upper(
        "helloworld360buy_param_json" + body + "access_tokentestapp_key12345678"
        "methodjingdong.pop.order.shipmenttimestamp2016-01-01 12:00:00v2.0helloworld"
    )
    assert query["sign"] == expected


def test_jd_hmac_sha256_sign_method_is_sent_and_signed() -> None:
    client = jd.Client(shop("jd", sign_method="hmacsha256"), clock=lambda: CLOCK)
    query = dict(client.build_request(jd.SEARCH, {"page": 1}).url.params)
    text = (
        '360buy_param_json{"page":1}access_tokentestapp_key12345678methodjingdong.pop.order.search'
        "sign_methodhmacsha256timestamp2016-01-01 12:00:00v2.0"
    )
    assert query["sign"] == hmac.new(b"helloworld", text.encode(), "sha256").hexdigest().upper()


# --- Douyin --------------------------------------------------------------------------


def test_douyin_param_json_sorted_at_every_depth_without_escapes() -> None:
    params = {"b": {"z": 1, "a": [{"y": "抖店", "x": 2}]}, "a": "\u2028"}
    assert douyin.param_json(params) == '{"a":"\\u2028","b":{"a":[{"x":2,"y":"抖店"}],"z":1}}'


def test_douyin_request_on_the_wire_hmac_sha256() -> None:
    client = douyin.Client(shop("douyin"), clock=lambda: CLOCK)
    request = client.build_request(
        "order.logisticsAdd", {"order_id": "4987654321098765432", "company_code": "shunfeng"}
    )
    assert request.url.path == "/order/logisticsAdd"
    query = dict(request.url.params)
    body = '{"company_code":"shunfeng","order_id":"4987654321098765432"}'
    assert request.content.decode() == body
    assert query["timestamp"] == "1451620800" and query["v"] == "2"
    assert query["method"] == "order.logisticsAdd" and query["access_token"] == "test"
    pattern = (
        "helloworld"
        + "app_key12345678"
        + "methodorder.logisticsAdd"
        + "param_json"
        + body
        + "timestamp1451620800"
        + "v2"
        + "helloworld"
    )
    assert query["sign_method"] == "hmac-sha256"
    assert query["sign"] == hmac.new(b"helloworld", pattern.encode(), "sha256").hexdigest()


def test_douyin_md5_sign_is_lower_hex_of_the_pattern() -> None:
    pattern = "sapp_keykmethodorder.searchListparam_json{}timestamp1v2s"
    assert (
        douyin.sign("k", "s", "order.searchList", "{}", "1", "md5")
        == hashlib.md5(pattern.encode()).hexdigest()
    )


# --- Pinduoduo -----------------------------------------------------------------------


def test_pdd_published_example() -> None:
    # PDD signing doc example (idStr=8EC06C399636041E), as transcribed by a client suite
    params = {
        "type": "pdd.order.number.list.get",
        "client_id": "1",
        "access_token": "asd78172s8ds9a921j9qqwda12312w1w21211",
        "data_type": "XML",
        "order_status": "1",
        "page": "1",
        "page_size": "10",
        "timestamp": "1480411125",
    }
    assert pdd.sign(params, "testSecret") == "E4DE3ED21002510DED352819E7AE6775"


def test_pdd_request_on_the_wire() -> None:
    client = pdd.Client(shop("pinduoduo"), clock=lambda: CLOCK)
    request = client.build_request(
        pdd.SHIP, {"order_sn": "201109-123", "logistics_id": 44, "tracking_number": "YT1"}
    )
    assert request.url.path == "/api/router"
    body = json.loads(request.content)
    assert all(isinstance(v, str) for v in body.values())  # every member a string
    assert body["timestamp"] == "1451620800" and body["data_type"] == "JSON"
    assert body["version"] == "V1" and body["client_id"] == "12345678"
    expected = md5_upper(
        "helloworld" + "access_tokentest" + "client_id12345678" + "data_typeJSON"
        "logistics_id44" + "order_sn201109-123" + "timestamp1451620800" + "tracking_numberYT1"
        "typepdd.logistics.online.send" + "versionV1" + "helloworld"
    )
    assert body["sign"] == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _keys_sorted(value: object) -> bool:
    if isinstance(value, dict):
        keys = list(value)
        return keys == sorted(keys) and all(_keys_sorted(v) for v in value.values())
    if isinstance(value, list):
        return all(_keys_sorted(v) for v in value)
    return True


@given(st.dictionaries(st.text(), json_values, max_size=5))
def test_douyin_param_json_is_canonical(params: dict[str, object]) -> None:
    text = douyin.param_json(params)
    decoded = json.loads(text, object_pairs_hook=dict)
    assert decoded == params  # lossless, big ints included
    assert _keys_sorted(decoded)  # sorted at every depth, as the text lists them
    # non-ASCII stays raw UTF-8; only U+2028/U+2029 are escaped, as Go's encoder does
    assert "\u2028" not in text and "\u2029" not in text
    for ch in "".join(str(k) for k in params):
        if ord(ch) > 127 and ch not in "\u2028\u2029":
            assert ch in text
