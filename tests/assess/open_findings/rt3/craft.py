"""craft.py OUT.zip STUDENT [name=content|@file|->symlinktarget ...] : a hand-in with a consistent submission.json"""
import hashlib, json, sys, zipfile, stat, os
out, student, *items = sys.argv[1:]
files = {}
base = {"service/app.py": open("/tmp/rt3-attacks/honest/app.py","rb").read(),
        "README.md": open("/tmp/rt3-attacks/honest/README.md","rb").read(),
        "model_card.json": open("/tmp/rt3-attacks/tiny/model_card.json","rb").read()}
links = {}
for it in items:
    if "->" in it:
        n, t = it.split("->",1); links[n] = t; base.pop(n, None); continue
    n, c = it.split("=",1)
    if c == "DELETE": base.pop(n, None); continue
    base[n] = open(c[1:],"rb").read() if c.startswith("@") else c.encode().decode("unicode_escape").encode("latin-1")
manifest = {"student": student, "lab": "practical", "created": "2026-12-06T08:04:27+00:00",
            "files": {n: hashlib.sha256(c).hexdigest() for n, c in base.items()}, "demo": False}
with zipfile.ZipFile(out, "w") as z:
    for n, c in base.items(): z.writestr(n, c)
    for n, t in links.items():
        zi = zipfile.ZipInfo(n); zi.create_system = 3; zi.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(zi, t)
    z.writestr("submission.json", json.dumps(manifest, indent=2))
print(out)
