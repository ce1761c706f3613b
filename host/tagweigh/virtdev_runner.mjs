// The REPL of the official MicroPython WebAssembly build as a byte stream, for tagweigh.virtdev.
//
//   node virtdev_runner.mjs <path to micropython.mjs> <setup.json>
//
// stdin carries what a serial client sends, stdout what the "board" answers (both raw bytes).
// setup.json: {heapsize, pystack, files: {path: base64}, first_boot_files: {...}, boot: code}.
// `files` are (re)written and `boot` is run before the REPL starts at every (soft) reset;
// `first_boot_files` only at the first start (they then live in the filesystem like flash does).
//
// What this adds to the plain REPL, so that mpremote-style clients work:
// - raw-paste requests (Ctrl-E 'A' Ctrl-A in raw mode) are answered "R\x00" (not supported): the
//   event-driven REPL would block on them; clients then fall back to the plain raw REPL;
// - soft reset (Ctrl-D on an empty raw/friendly line, SystemExit, machine.soft_reset()) gives a
//   fresh interpreter with the SAME filesystem, prints "MPY: soft reboot", and comes back in raw
//   mode if it was in raw mode, as the firmware does; machine.reset() marks a hard reset
//   (back to the friendly REPL with the banner).
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { newInstance } from "./mpvm_shim.mjs";

for (const name of ["log", "info", "warn", "debug"]) console[name] = (...a) => console.error(...a);

const [mjsPath, setupPath] = process.argv.slice(2);
if (!mjsPath || !setupPath) {
    console.error("usage: node virtdev_runner.mjs <micropython.mjs> <setup.json>");
    process.exit(2);
}
const { loadMicroPython } = await import(pathToFileURL(mjsPath).href);
const setup = JSON.parse(readFileSync(setupPath, "utf8"));

const HARD_RESET_MARK = "/_esp32/hard_reset"; // machine.reset() creates it before SystemExit
const SKIP_IN_SNAPSHOT = new Set(["/dev", "/proc"]);

let mp = null;
let out = [];
let rawMode = false;
let held = []; // bytes of a possible raw-paste request, not yet given to the REPL

// Text output as a board's UART gives it: "\n" becomes "\r\n" (MicroPython's "cooked" stdout).
function cooked(bytes) {
    for (const b of bytes) {
        if (b === 0x0a && out[out.length - 1] !== 0x0d) out.push(0x0d);
        out.push(b);
    }
}

function emit(text) {
    for (const b of Buffer.from(text, "latin1")) out.push(b);
}

function flush() {
    if (out.length) {
        process.stdout.write(Buffer.from(out));
        out = [];
    }
}

function mkdirs(FS, path) {
    let cur = "";
    for (const part of path.split("/").filter((p) => p.length > 0)) {
        cur += "/" + part;
        if (!FS.analyzePath(cur).exists) FS.mkdir(cur);
    }
}

function writeFile(FS, path, data) {
    const slash = path.lastIndexOf("/");
    if (slash > 0) mkdirs(FS, path.slice(0, slash));
    FS.writeFile(path, data);
}

// The filesystem outlives a soft reset, as flash does: copy it out and back in.
function snapshot(FS) {
    const dirs = [];
    const files = [];
    const walk = (dir) => {
        for (const name of FS.readdir(dir)) {
            if (name === "." || name === "..") continue;
            const path = (dir === "/" ? "" : dir) + "/" + name;
            if (SKIP_IN_SNAPSHOT.has(path)) continue;
            const st = FS.stat(path);
            if (FS.isDir(st.mode)) {
                dirs.push(path);
                walk(path);
            } else if (FS.isFile(st.mode)) {
                files.push([path, FS.readFile(path)]);
            }
        }
    };
    walk("/");
    return { dirs, files };
}

function restore(FS, snap) {
    for (const d of snap.dirs) mkdirs(FS, d);
    for (const [p, data] of snap.files) FS.writeFile(p, data);
}

async function boot(first) {
    const snap = mp ? snapshot(mp.FS) : null;
    mp = null;
    newInstance();
    mp = await loadMicroPython({
        heapsize: setup.heapsize ?? 110 * 1024,
        pystack: setup.pystack ?? 2048,
        stdout: cooked,
        stderr: cooked,
        linebuffer: false,
    });
    if (snap) restore(mp.FS, snap);
    if (first) {
        for (const [p, b64] of Object.entries(setup.first_boot_files ?? {})) {
            writeFile(mp.FS, p, Buffer.from(b64, "base64"));
        }
    }
    for (const [p, b64] of Object.entries(setup.files ?? {})) {
        writeFile(mp.FS, p, Buffer.from(b64, "base64"));
    }
    if (setup.boot) {
        try {
            mp.runPython(setup.boot);
        } catch (err) {
            emit("virtual device boot failed:\r\n" + String(err.message ?? err) + "\r\n");
        }
    }
}

async function reset() {
    let hard = false;
    if (mp.FS.analyzePath(HARD_RESET_MARK).exists) {
        mp.FS.unlink(HARD_RESET_MARK);
        hard = true;
    }
    const backToRaw = rawMode && !hard;
    emit(hard ? "\r\nrst:0xc (SW_CPU_RESET), virtual device\r\n" : "MPY: soft reboot\r\n");
    await boot(false);
    const before = out.length;
    mp.replInit(); // prints the banner and the friendly prompt
    rawMode = false;
    if (backToRaw) {
        out.length = before; // the firmware goes straight back to raw mode, no banner
        await feed(0x01);
    }
}

async function feed(c) {
    if (c === 0x01) rawMode = true;
    else if (c === 0x02) rawMode = false;
    const r = mp.replProcessChar(c);
    if (r !== 0) await reset();
}

async function processByte(c) {
    if (rawMode) {
        // Raw-paste request: Ctrl-E, 'A', Ctrl-A. Answer "not supported" ourselves.
        if (held.length === 0 && c === 0x05) { held.push(c); return; }
        if (held.length === 1 && c === 0x41) { held.push(c); return; }
        if (held.length === 2 && c === 0x01) {
            held = [];
            emit("R\x00");
            return;
        }
        if (held.length) {
            const pending = held;
            held = [];
            for (const h of pending) await feed(h);
        }
    }
    await feed(c);
}

let queue = [];
let pumping = false;

async function pump() {
    if (pumping) return;
    pumping = true;
    try {
        while (queue.length) {
            const chunk = queue.shift();
            for (const c of chunk) await processByte(c);
            flush();
        }
    } finally {
        pumping = false;
    }
}

await boot(true);
mp.replInit();
flush();

process.stdin.on("data", (chunk) => {
    queue.push(chunk);
    pump().catch((err) => {
        console.error("virtdev_runner: " + (err && err.stack || err));
        process.exit(1);
    });
});
process.stdin.on("end", () => process.exit(0));
