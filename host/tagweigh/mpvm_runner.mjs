// Runs the official MicroPython WebAssembly build for tagweigh.mpvm (one long-lived process).
//
//   node mpvm_runner.mjs <path to micropython.mjs>
//
// Requests and replies are frames on stdin/stdout: a 4-byte little-endian length, then that many
// bytes of UTF-8 JSON. One request is handled at a time, in order; every request gets exactly one
// reply. Everything the interpreter prints is captured per request, so stdout carries frames only.
//
//   {op:"init", heapsize, pystack}         fresh interpreter and a fresh filesystem
//   {op:"mkdir", path}                     mkdir -p
//   {op:"write", path, data_b64}           write a file (parents created)
//   {op:"read", path}                      -> {data_b64}
//   {op:"exec", code, result?}             -> {stdout, value?}; value = str(global named `result`)
//   {op:"ping"}
// Reply: {ok:true, ...} or {ok:false, stdout, error:{type, message, traceback}}.
import { pathToFileURL } from "node:url";
import { newInstance } from "./mpvm_shim.mjs";

// Frames go to fd 1 only through reply(); anything else a library logs goes to stderr.
for (const name of ["log", "info", "warn", "debug"]) console[name] = (...a) => console.error(...a);

const MAX_FRAME = 64 * 1024 * 1024; // the peer is our own parent, but a bound costs nothing

const mjsPath = process.argv[2];
if (!mjsPath) {
    console.error("usage: node mpvm_runner.mjs <micropython.mjs>");
    process.exit(2);
}
const { loadMicroPython } = await import(pathToFileURL(mjsPath).href);

let mp = null;
let captured = [];

async function init(req) {
    mp = null;
    captured = [];
    newInstance();
    mp = await loadMicroPython({
        heapsize: req.heapsize ?? 110 * 1024,
        pystack: req.pystack ?? 2048,
        stdout: (bytes) => { for (const b of bytes) captured.push(b); },
        stderr: (bytes) => { for (const b of bytes) captured.push(b); },
        linebuffer: false,
    });
    return {};
}

function mkdirs(path) {
    let cur = "";
    for (const part of path.split("/").filter((p) => p.length > 0)) {
        cur += "/" + part;
        const info = mp.FS.analyzePath(cur);
        if (!info.exists) mp.FS.mkdir(cur);
    }
}

function takeOutput() {
    const text = Buffer.from(captured).toString("utf8");
    captured = [];
    return text;
}

function pyError(err) {
    // PythonError: type = exception class name, message = the whole MicroPython traceback.
    const tb = String(err.message ?? "");
    const lines = tb.trimEnd().split("\n");
    return { type: err.type, message: lines[lines.length - 1] ?? "", traceback: tb };
}

async function handle(req) {
    if (req.op === "ping") return {};
    if (req.op === "init") return await init(req);
    if (mp === null) throw new Error("interpreter not initialised (send op init first)");
    switch (req.op) {
        case "mkdir":
            mkdirs(req.path);
            return {};
        case "write": {
            const slash = req.path.lastIndexOf("/");
            if (slash > 0) mkdirs(req.path.slice(0, slash));
            mp.FS.writeFile(req.path, Buffer.from(req.data_b64, "base64"));
            return {};
        }
        case "read":
            return { data_b64: Buffer.from(mp.FS.readFile(req.path)).toString("base64") };
        case "exec": {
            captured = [];
            try {
                mp.runPython(req.code);
            } catch (err) {
                if (err && err.name === "PythonError") {
                    return { ok: false, stdout: takeOutput(), error: pyError(err) };
                }
                // A JS-level failure (wasm trap, abort): this interpreter cannot be trusted again.
                const stdout = takeOutput();
                mp = null;
                return {
                    ok: false,
                    stdout,
                    error: { type: "VMCrash", message: String(err && err.stack || err), traceback: "" },
                    dead: true,
                };
            }
            const reply = { stdout: takeOutput() };
            if (req.result) {
                const v = mp.globals.get(req.result);
                reply.value = v === undefined || v === null ? null : String(v);
            }
            return reply;
        }
        default:
            throw new Error("unknown op " + JSON.stringify(req.op));
    }
}

function reply(obj) {
    if (obj.ok === undefined) obj.ok = true;
    const body = Buffer.from(JSON.stringify(obj), "utf8");
    const head = Buffer.alloc(4);
    head.writeUInt32LE(body.length, 0);
    process.stdout.write(Buffer.concat([head, body]));
}

let pending = Buffer.alloc(0);
let busy = Promise.resolve();

process.stdin.on("data", (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 4) {
        const n = pending.readUInt32LE(0);
        if (n > MAX_FRAME) {
            console.error("mpvm_runner: frame of " + n + " bytes exceeds the limit");
            process.exit(3);
        }
        if (pending.length < 4 + n) break;
        const body = pending.subarray(4, 4 + n).toString("utf8");
        pending = pending.subarray(4 + n);
        busy = busy.then(async () => {
            let req;
            try {
                req = JSON.parse(body);
                reply(await handle(req));
            } catch (err) {
                reply({
                    ok: false,
                    stdout: takeOutput(),
                    error: { type: "RunnerError", message: String(err && err.message || err), traceback: "" },
                });
            }
        });
    }
});
process.stdin.on("end", () => { busy.then(() => process.exit(0)); });
