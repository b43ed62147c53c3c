/**
 * Judge-style stdio: the files of `--stdin`, `--stdout` and `--stderr`,
 * opened by sbox on the host before the container starts and handed to the
 * command as its fds 0, 1 and 2.
 *
 * @module
 */

import { SboxError } from "../error.ts";
import { close, O, open } from "../sys.ts";
import type { RunOptions } from "./args.ts";

/** The files of --stdin, --stdout and --stderr, opened by sbox on the host. */
export interface OpenStdio {
  /** For each of stdin, stdout, stderr: an open fd, or "inherit". */
  fds: [number | "inherit", number | "inherit", number | "inherit"];
  /** Closes the files (again: harmless). */
  close(): void;
}

/**
 * Opens the files (stdin read-only; stdout and stderr created or truncated,
 * mode 0644). Throws an SboxError naming the option, having closed what it opened.
 */
export function openStdio(options: Pick<RunOptions, "stdin" | "stdout" | "stderr">): OpenStdio {
  const opened = new Map<string, number>();
  const fds: OpenStdio["fds"] = ["inherit", "inherit", "inherit"];
  const closeAll = () => {
    for (const fd of opened.values()) close(fd);
    opened.clear();
  };
  const openOne = (option: string, path: string | undefined, flags: number): number | "inherit" => {
    if (path === undefined) return "inherit";
    // --stdout and --stderr naming one file share it, as `>f 2>&1` does.
    const key = `${flags}:${path}`;
    const known = opened.get(key);
    if (known !== undefined) return known;
    try {
      const fd = open(path, flags, 0o644);
      opened.set(key, fd);
      return fd;
    } catch (err) {
      throw new SboxError(`${option}: ${(err as Error).message}`, { step: "open", cause: err });
    }
  };
  try {
    const write = O.WRONLY | O.CREAT | O.TRUNC;
    fds[0] = openOne("--stdin", options.stdin, O.RDONLY);
    fds[1] = openOne("--stdout", options.stdout, write);
    fds[2] = openOne("--stderr", options.stderr, write);
  } catch (err) {
    closeAll();
    throw err;
  }
  return { fds, close: closeAll };
}
