"""The indexed location of test_forget serves every erasure test."""

from tests.plugins.faceidx.erasure.test_forget import indexed, location  # noqa: F401 (fixtures)
