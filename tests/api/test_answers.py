"""JSONAnswer (api/answers.py) writes the same bytes as Starlette's JSONResponse did.

Given any value the write routes answer with (text, integers, booleans, null, lists, objects
with text keys), when it is rendered, then the bytes equal those of the standard library's
encoder as Starlette calls it (compact, UTF-8, no ASCII escaping).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.responses import JSONResponse

from api.answers import JSONAnswer

# Control characters, line and paragraph separators, quotes, backslashes, non-BMP characters:
# text as it comes (Hypothesis's text leaves out lone surrogates, which the API refuses).
_scalars = st.none() | st.booleans() | st.integers() | st.text()
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(_values)
def test_the_bytes_equal_starlettes(value):
    assert JSONAnswer(value).body == JSONResponse(value).body


def test_a_write_answer_keeps_its_status_and_headers():
    answer = JSONAnswer({"id": "x", "text": "é\u2028\x00"}, status_code=201, headers={"ETag": "3"})
    assert answer.status_code == 201
    assert answer.headers["etag"] == "3"
    assert answer.headers["content-type"] == "application/json"
    assert answer.body == b'{"id":"x","text":"\xc3\xa9\xe2\x80\xa8\\u0000"}'


def test_outside_plain_values_the_differences_are_known():
    """Floats are not among the routes' values; if one ever is, NaN is still valid JSON."""
    assert JSONAnswer([1e-7, float("nan"), float("inf")]).body == b"[1e-7,null,null]"
    assert JSONResponse([1e-7]).body == b"[1e-07]"
