"""Every page in Chinese and English: no text of the pages lacks its
Chinese translation, and the language follows the switch, the browser and
the default."""
from headend.api.deps import SESSION_COOKIE
from headend.web import i18n
from tools.i18n.__main__ import missing, msgids


def test_every_page_text_has_a_chinese_translation():
    assert len(msgids()) > 50
    assert missing("zh-CN") == []


def test_pages_follow_the_language(app, client):
    from tests.headend.conftest import make_user
    make_user(app, "lang-admin", "admin", password="admin-password")
    r = client.post("/login", data={"username": "lang-admin", "password": "admin-password"}, follow_redirects=False)
    client.cookies.set(SESSION_COOKIE, r.cookies[SESSION_COOKIE])
    zh = client.get("/staff/audit", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).text
    assert "审计日志" in zh and 'lang="zh-CN"' in zh and "Audit log" not in zh
    en = client.get("/staff/audit", headers={"Accept-Language": "en-GB,en;q=0.9"}).text
    assert "Audit log" in en and 'lang="en"' in en and "审计日志" not in en
    # the switch (a cookie) wins over the browser
    client.get("/lang/en", follow_redirects=False)
    assert client.cookies.get(i18n.COOKIE) == "en"
    assert "Audit log" in client.get("/staff/audit", headers={"Accept-Language": "zh-CN"}).text
    # a browser that says neither gets the default (Chinese)
    client.cookies.delete(i18n.COOKIE)
    assert "审计日志" in client.get("/staff/audit", headers={"Accept-Language": "fr"}).text
    # the login page is translated too, and the error message on it
    client.cookies.clear()
    page = client.post("/login", data={"username": "x", "password": "y"}, headers={"Accept-Language": "zh"}).text
    assert "用户名或密码错误" in page
