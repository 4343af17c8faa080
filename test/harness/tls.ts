import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";

/** A throwaway self-signed EC certificate for `localhost` (openssl), removed after the test. */
export function selfSignedCert(t: TestContext): { certFile: string; keyFile: string } {
  const dir = mkdtempSync(join(tmpdir(), "edge-tls-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  const key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const subject = ["-days", "1", "-subj", "/CN=localhost", "-keyout", keyFile, "-out", certFile];
  execFileSync("openssl", ["req", "-x509", ...key, ...subject], { stdio: "ignore" });
  return { certFile, keyFile };
}
