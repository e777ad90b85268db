// Real framework apps for the matrix tests (test/tools/frameworks-matrix.test.ts): a Next.js App Router
// project and a NestJS project, written as their users write them, built with the frameworks' own tools
// (`next build`; tsc with decorators, which is what `nest build` runs) into release directories.
//
// The frameworks are not devDependencies of nserve (a fresh machine's `npm ci` stays lean): they live in
// test/frameworks-matrix/, installed by scripts/frameworks-matrix.mjs before `npm run test:tools`. The
// apps are built inside that folder, in a work directory removed after the test, because Turbopack
// resolves only files under its root, and node_modules must be there (a symlink out of it is refused).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { processAlive, ROOT } from './server.js';
import type { Cleanup } from './tmp.js';

export const MATRIX = path.join(ROOT, 'test/frameworks-matrix');
export const NEXT_BIN = path.join(MATRIX, 'node_modules/next/dist/bin/next');
const TSC = path.join(ROOT, 'node_modules/typescript/bin/tsc');
/** No telemetry call home (there is no network here anyway, and a build must not wait for one). */
export const NEXT_ENV = { NEXT_TELEMETRY_DISABLED: '1' };

/** Throws, naming the command that installs them, if the matrix's frameworks are not installed. */
export function assertMatrixInstalled(): void {
  for (const pkg of ['next', '@nestjs/core', '@nestjs/platform-express', 'reflect-metadata']) {
    if (!fs.existsSync(path.join(MATRIX, 'node_modules', pkg, 'package.json')))
      throw new Error(
        `${pkg} is not installed in test/frameworks-matrix: run node scripts/frameworks-matrix.mjs (npm run test:tools does)`,
      );
  }
}

/**
 * A new work directory under test/frameworks-matrix (named after this process, so that one left by a
 * killed run is removed by the next), removed at the end of the test `t`.
 */
export function matrixWorkDir(t: Cleanup): string {
  for (const e of fs.readdirSync(MATRIX)) {
    const m = /^\.work-(\d+)-/.exec(e);
    if (m !== null && Number(m[1]) !== process.pid && !processAlive(Number(m[1])))
      fs.rmSync(path.join(MATRIX, e), { recursive: true, force: true });
  }
  const dir = fs.mkdtempSync(path.join(MATRIX, `.work-${process.pid}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 }));
  return dir;
}

/** Run a build command to completion in its own process group, killed by PID past `timeoutMs`. */
export function runBuild(
  what: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<{ ms: number; output: string }> {
  const started = Date.now();
  const timeoutMs = options.timeoutMs ?? 180_000;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => {
      output += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      output += c.toString();
    });
    const killGroup = (): void => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // the group is gone
      }
    };
    const timer = setTimeout(() => {
      killGroup();
      reject(new Error(`${what}: no result within ${timeoutMs} ms, killed\n${output.slice(-3000)}`));
    }, timeoutMs);
    process.once('exit', killGroup);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      process.removeListener('exit', killGroup);
      killGroup(); // a build worker it left behind
      if (code === 0) resolve({ ms: Date.now() - started, output });
      else reject(new Error(`${what} failed (${signal ?? `exit ${code}`}):\n${output.slice(-3000)}`));
    });
  });
}

function write(dir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
}

/**
 * A Next.js App Router project at `dir` whose page, and its JSON route, say `version`: `/` renders
 * `release VERSION`, `/api/version` answers `{ version, pid }`, `/api/slow` the same after 1 s. No
 * next/font (it would fetch Google Fonts at build time), no TypeScript (next build would install it).
 */
export function writeNextApp(dir: string, version: string, options: { standalone: boolean }): void {
  const dynamic = "export const dynamic = 'force-dynamic';\n";
  write(dir, {
    'package.json': '{ "private": true, "scripts": { "build": "next build", "start": "next start" } }\n',
    // Turbopack's root (and the standalone trace's) must hold node_modules: test/frameworks-matrix.
    'next.config.mjs': `export default ${JSON.stringify({
      ...(options.standalone ? { output: 'standalone' } : {}),
      outputFileTracingRoot: MATRIX,
      turbopack: { root: MATRIX },
    })};\n`,
    'app/layout.js':
      'export default function RootLayout({ children }) {\n  return (<html lang="en"><body>{children}</body></html>);\n}\n',
    'app/page.js': `${dynamic}export default function Page() {\n  return <main>release ${version} from {process.pid}</main>;\n}\n`,
    'app/api/version/route.js': `${dynamic}export function GET() {\n  return Response.json({ version: '${version}', pid: process.pid });\n}\n`,
    'app/api/slow/route.js': `${dynamic}export async function GET() {\n  await new Promise((r) => setTimeout(r, 1000));\n  return Response.json({ version: '${version}', pid: process.pid });\n}\n`,
  });
}

/** `next build` in `dir`. */
export function nextBuild(dir: string): Promise<{ ms: number; output: string }> {
  return runBuild(`next build in ${dir}`, [NEXT_BIN, 'build'], { cwd: dir, env: NEXT_ENV });
}

/**
 * Build a standalone Next.js release: `next build` in `appDir`, then move `.next/standalone` to
 * `<root>/releases/<version>` and `.next/static` beside its server.js, as Next's docs say to deploy
 * it. Returns the build time and the directory of server.js relative to the release (the app's path
 * under test/frameworks-matrix, the trace's root).
 */
export async function buildStandaloneRelease(
  root: string,
  appDir: string,
  version: string,
): Promise<{ ms: number; serverDir: string }> {
  writeNextApp(appDir, version, { standalone: true });
  const { ms } = await nextBuild(appDir);
  const release = path.join(root, 'releases', version);
  fs.mkdirSync(path.dirname(release), { recursive: true });
  fs.renameSync(path.join(appDir, '.next/standalone'), release);
  const serverDir = path.relative(MATRIX, appDir);
  fs.renameSync(path.join(appDir, '.next/static'), path.join(release, serverDir, '.next/static'));
  return { ms, serverDir };
}

/** A NestJS project (TypeScript, decorators, ESM as Nest 12 is) at `dir`: GET / and GET /slow (1 s). */
export function writeNestApp(dir: string, version: string): void {
  write(dir, {
    'package.json': '{ "private": true, "type": "module" }\n',
    'tsconfig.json': `${JSON.stringify(
      {
        compilerOptions: {
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          experimentalDecorators: true,
          emitDecoratorMetadata: true,
          outDir: 'dist',
          rootDir: 'src',
          skipLibCheck: true,
          strict: true,
          types: ['node'],
        },
      },
      null,
      2,
    )}\n`,
    'src/app.service.ts': `import { Injectable } from '@nestjs/common';

@Injectable()
export class AppService {
  readonly version = '${version}';
}
`,
    'src/app.controller.ts': `import { Controller, Get } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppService } from './app.service.js';

@Controller()
export class AppController {
  constructor(private readonly app: AppService) {}

  @Get()
  version() {
    return { version: this.app.version, pid: process.pid };
  }

  @Get('slow')
  async slow() {
    await sleep(1000);
    return { version: this.app.version, pid: process.pid };
  }
}
`,
    'src/app.module.ts': `import { Module } from '@nestjs/common';
import { AppController } from './app.controller.js';
import { AppService } from './app.service.js';

@Module({ controllers: [AppController], providers: [AppService] })
export class AppModule {}
`,
    // As `nest new` writes it, with shutdown hooks on (they listen for SIGTERM and SIGINT).
    'src/main.ts': `import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';

const app = await NestFactory.create(AppModule, { logger: ['error', 'warn'] });
app.enableShutdownHooks();
await app.listen(process.env.PORT ?? 3000);
`,
  });
}

/** Write and compile (tsc, as `nest build` does) a NestJS release at `<root>/releases/<version>`. */
export async function buildNestRelease(root: string, version: string): Promise<{ ms: number }> {
  const dir = path.join(root, 'releases', version);
  writeNestApp(dir, version);
  const { ms } = await runBuild(`tsc for the NestJS app in ${dir}`, [TSC, '-p', dir], { cwd: dir });
  return { ms };
}
