import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // Bounds for a hung test on a machine whose cores are all busy; they never pace one. Above
    // test/support/wait-for.ts's 60 s, so a stuck wait fails naming what it awaited.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    projects: [
      {
        extends: true,
        test: { name: "unit", include: ["test/**/*.test.ts"], exclude: ["test/e2e/**"] },
      },
      {
        extends: true,
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          fileParallelism: false,
          globalSetup: ["test/e2e/global-setup.ts"],
        },
      },
    ],
  },
});
