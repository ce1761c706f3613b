// Lets one Node process host a series of MicroPython wasm instances (used by both runners).
//
// The wasm build registers every PyProxy in a FinalizationRegistry whose callback frees the proxy
// in "the" current instance (globalThis.Module). After an instance is replaced, proxies of the old
// one are still collected later, and their callbacks would free unrelated objects of the new one
// (seen as "memory access out of bounds"). Registries created here ignore callbacks from
// registrations made before the latest newInstance() call.
const RealRegistry = globalThis.FinalizationRegistry;
let generation = 0;

globalThis.FinalizationRegistry = class GenerationRegistry {
    constructor(callback) {
        this._inner = new RealRegistry(([gen, held]) => {
            if (gen === generation) callback(held);
        });
    }
    register(target, held, token) {
        return this._inner.register(target, [generation, held], token);
    }
    unregister(token) {
        return this._inner.unregister(token);
    }
};

/** Call before loading a new interpreter that replaces the current one. */
export function newInstance() {
    generation += 1;
}
