import type { Command } from "commander";

/** The shells `leasehold completion` writes a script for. */
export const COMPLETION_SHELLS = ["bash", "zsh", "fish"] as const;
export type CompletionShell = (typeof COMPLETION_SHELLS)[number];

/** One option of a command, as a completion script offers it. */
export interface CompletionOption {
  readonly long?: string;
  readonly short?: string;
  readonly description: string;
  readonly takesValue: boolean;
  /** The values it accepts, when it names them (`--output table|json`). */
  readonly choices: readonly string[];
}

/** One command of the tree: its path from the program ("" for the program, "leases list"). */
export interface CompletionNode {
  readonly path: string;
  readonly commands: ReadonlyArray<{ readonly name: string; readonly description: string }>;
  readonly options: readonly CompletionOption[];
}

/** The first line of a description: a completion menu shows one line. */
function oneLine(text: string): string {
  return (text.split("\n")[0] ?? "").trim();
}

/** Every visible command of `program`, breadth first, with its subcommands and options. */
export function completionTree(program: Command): CompletionNode[] {
  const help = program.createHelp();
  const nodes: CompletionNode[] = [];
  const queue: Array<{ cmd: Command; path: string }> = [{ cmd: program, path: "" }];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    const { cmd, path } = next;
    const subs = help.visibleCommands(cmd);
    const commands = subs.flatMap((sub) =>
      [sub.name(), ...sub.aliases()].map((name) => ({
        name,
        description: oneLine(sub.summary() || sub.description()),
      })),
    );
    const options = help.visibleOptions(cmd).map(
      (o): CompletionOption => ({
        ...(o.long ? { long: o.long } : {}),
        ...(o.short ? { short: o.short } : {}),
        description: oneLine(o.description),
        takesValue: o.required || o.optional,
        choices: o.argChoices ?? [],
      }),
    );
    nodes.push({ path, commands, options });
    for (const sub of subs) {
      // commander's implicit `help [command]` has nothing below it
      if (sub.name() !== "help" || sub.commands.length > 0)
        queue.push({ cmd: sub, path: path === "" ? sub.name() : `${path} ${sub.name()}` });
    }
  }
  return nodes;
}

/** Long options of `node`, with the program's own (accepted anywhere on the line) after them. */
function longOptions(node: CompletionNode, root: CompletionNode): CompletionOption[] {
  const own = node.options.filter((o) => o.long !== undefined);
  const seen = new Set(own.map((o) => o.long));
  return node === root ? own : [...own, ...root.options.filter((o) => o.long && !seen.has(o.long))];
}

/** Option spellings (long and short) that take a value, anywhere in the tree. */
function valueOptions(nodes: readonly CompletionNode[]): string[] {
  const all = new Set<string>();
  for (const n of nodes)
    for (const o of n.options)
      if (o.takesValue) for (const f of [o.long, o.short]) if (f !== undefined) all.add(f);
  return [...all].sort();
}

/**
 * Options that name their values, as `case` patterns: `'leases list:--output'` (the command's
 * path, then the spelling) with the values; the program's own options match under any path.
 */
function choiceCases(
  nodes: readonly CompletionNode[],
  quote: (s: string) => string,
): Array<{ pattern: string; choices: readonly string[] }> {
  const out: Array<{ pattern: string; choices: readonly string[] }> = [];
  for (const n of nodes)
    for (const o of n.options)
      if (o.choices.length > 0)
        for (const f of [o.long, o.short])
          if (f !== undefined)
            out.push({
              pattern: n.path === "" ? `*${quote(`:${f}`)}` : quote(`${n.path}:${f}`),
              choices: o.choices,
            });
  return out;
}

/** A string in single quotes for bash and zsh. */
function sq(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

/** A string in single quotes for fish (which escapes \ and ' inside them). */
function fishQuote(s: string): string {
  return `'${s.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}

/** A zsh `_describe` item: `name:description`, the colons of the name escaped. */
function describeItem(name: string, description: string): string {
  return sq(`${name.replaceAll(":", "\\:")}:${description}`);
}

function bashScript(nodes: readonly CompletionNode[]): string {
  const root = nodes[0] as CompletionNode;
  const subCases = nodes
    .filter((n) => n.commands.length > 0)
    .map((n) => `    ${sq(n.path)}) echo ${sq(n.commands.map((c) => c.name).join(" "))} ;;`);
  const optCases = nodes.map(
    (n) =>
      `    ${sq(n.path)}) echo ${sq(
        longOptions(n, root)
          .map((o) => o.long)
          .join(" "),
      )} ;;`,
  );
  const choices = choiceCases(nodes, sq).map((c) => `    ${c.pattern}) echo ${sq(c.choices.join(" "))} ;;`);
  return `# bash completion for leasehold (generated by: leasehold completion bash)
# Load it in this shell:   source <(leasehold completion bash)
# or for every shell:      leasehold completion bash > ~/.local/share/bash-completion/completions/leasehold

_leasehold_subcommands() {
  case "$1" in
${subCases.join("\n")}
  esac
}

_leasehold_options() {
  case "$1" in
${optCases.join("\n")}
  esac
}

_leasehold_choices() {
  case "$1" in
${choices.join("\n")}
  esac
}

_leasehold_takes_value() {
  case "$1" in
    ${valueOptions(nodes).join("|")}) return 0 ;;
  esac
  return 1
}

_leasehold() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="" cmdpath="" word skip="" i
  COMPREPLY=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    if [[ -n "$skip" ]]; then
      skip=""
      continue
    fi
    case "$word" in
      --) return 0 ;;
      -*)
        if [[ "$word" != *=* ]] && _leasehold_takes_value "$word"; then skip=1; fi
        continue
        ;;
    esac
    if [[ " $(_leasehold_subcommands "$cmdpath") " == *" $word "* ]]; then
      cmdpath="\${cmdpath:+$cmdpath }$word"
    fi
  done
  ((COMP_CWORD > 1)) && prev="\${COMP_WORDS[COMP_CWORD - 1]}"
  if [[ -n "$prev" ]] && _leasehold_takes_value "$prev"; then
    COMPREPLY=($(compgen -W "$(_leasehold_choices "$cmdpath:$prev")" -- "$cur"))
    return 0
  fi
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(_leasehold_options "$cmdpath")" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(_leasehold_subcommands "$cmdpath")" -- "$cur"))
  fi
  return 0
}

complete -o default -F _leasehold leasehold
`;
}

function zshScript(nodes: readonly CompletionNode[]): string {
  const root = nodes[0] as CompletionNode;
  const subCases = nodes
    .filter((n) => n.commands.length > 0)
    .map(
      (n) =>
        `    (${sq(n.path)}) lh_items=(${n.commands.map((c) => describeItem(c.name, c.description)).join(" ")}) ;;`,
    );
  const optCases = nodes.map(
    (n) =>
      `    (${sq(n.path)}) lh_items=(${longOptions(n, root)
        .map((o) => describeItem(o.long as string, o.description))
        .join(" ")}) ;;`,
  );
  const choices = choiceCases(nodes, sq).map(
    (c) => `    (${c.pattern}) lh_items=(${c.choices.map(sq).join(" ")}) ;;`,
  );
  return `#compdef leasehold
# zsh completion for leasehold (generated by: leasehold completion zsh)
# Load it in this shell (after compinit):   source <(leasehold completion zsh)
# or for every shell: leasehold completion zsh > "\${fpath[1]}/_leasehold"

_leasehold_subcommands() {
  lh_items=()
  case "$1" in
${subCases.join("\n")}
  esac
}

_leasehold_options() {
  lh_items=()
  case "$1" in
${optCases.join("\n")}
  esac
}

_leasehold_choices() {
  lh_items=()
  case "$1" in
${choices.join("\n")}
  esac
}

_leasehold_takes_value() {
  case "$1" in
    (${valueOptions(nodes).join("|")}) return 0 ;;
  esac
  return 1
}

_leasehold() {
  local cmdpath="" word skip="" prev i
  local -a lh_items names
  for ((i = 2; i < CURRENT; i++)); do
    word="\${words[i]}"
    if [[ -n "$skip" ]]; then
      skip=""
      continue
    fi
    case "$word" in
      (--) _files; return ;;
      (-*)
        if [[ "$word" != *=* ]] && _leasehold_takes_value "$word"; then skip=1; fi
        continue
        ;;
    esac
    _leasehold_subcommands "$cmdpath"
    names=(\${lh_items%%:*})
    if (( \${names[(Ie)$word]} )); then
      cmdpath="\${cmdpath:+$cmdpath }$word"
    fi
  done
  prev="\${words[CURRENT-1]}"
  if (( CURRENT > 2 )) && _leasehold_takes_value "$prev"; then
    _leasehold_choices "$cmdpath:$prev"
    if (( \${#lh_items} )); then compadd -a lh_items; else _files; fi
    return
  fi
  if [[ "\${words[CURRENT]}" == -* ]]; then
    _leasehold_options "$cmdpath"
    _describe -t options 'option' lh_items
  else
    _leasehold_subcommands "$cmdpath"
    if (( \${#lh_items} )); then _describe -t commands 'command' lh_items; else _files; fi
  fi
}

if [[ "\${funcstack[1]}" == "_leasehold" ]]; then
  _leasehold "$@"
else
  compdef _leasehold leasehold
fi
`;
}

function fishScript(nodes: readonly CompletionNode[]): string {
  const subCases = nodes
    .filter((n) => n.commands.length > 0)
    .map(
      (n) =>
        `        case ${fishQuote(n.path)}\n            printf '%s\\n' ${n.commands.map((c) => fishQuote(c.name)).join(" ")}`,
    );
  const lines: string[] = [];
  for (const n of nodes) {
    const at = fishQuote(`__leasehold_at ${fishQuote(n.path)}`);
    for (const c of n.commands)
      lines.push(`complete -c leasehold -f -n ${at} -a ${fishQuote(c.name)} -d ${fishQuote(c.description)}`);
    for (const o of n.options) {
      const flags = [
        o.long ? `-l ${fishQuote(o.long.slice(2))}` : "",
        o.short ? `-s ${fishQuote(o.short.slice(1))}` : "",
      ]
        .filter(Boolean)
        .join(" ");
      const value =
        o.choices.length > 0 ? ` -x -a ${fishQuote(o.choices.join(" "))}` : o.takesValue ? " -r" : "";
      // The program's options are accepted anywhere on the line: no condition.
      const where = n.path === "" ? "" : ` -n ${at}`;
      lines.push(`complete -c leasehold${where} ${flags}${value} -d ${fishQuote(o.description)}`);
    }
  }
  return `# fish completion for leasehold (generated by: leasehold completion fish)
# Load it in this shell:   leasehold completion fish | source
# or for every shell:      leasehold completion fish > ~/.config/fish/completions/leasehold.fish

function __leasehold_subcommands
    switch "$argv[1]"
${subCases.join("\n")}
    end
end

function __leasehold_takes_value
    contains -- $argv[1] ${valueOptions(nodes).map(fishQuote).join(" ")}
end

function __leasehold_path
    set -l tokens (commandline -opc)
    set -l cmdpath ''
    set -l skip 0
    for word in $tokens[2..-1]
        if test $skip = 1
            set skip 0
            continue
        end
        switch $word
            case '--'
                break
            case '-*'
                if not string match -q -- '*=*' $word; and __leasehold_takes_value $word
                    set skip 1
                end
                continue
        end
        if contains -- $word (__leasehold_subcommands "$cmdpath")
            set cmdpath (string trim -- "$cmdpath $word")
        end
    end
    echo $cmdpath
end

function __leasehold_at
    set -l p (__leasehold_path)
    test "$p" = "$argv[1]"
end

complete -c leasehold -e
${lines.join("\n")}
`;
}

/** The completion script of `program` for `shell`: its commands, subcommands and long options. */
export function completionScript(shell: CompletionShell, program: Command): string {
  const nodes = completionTree(program);
  switch (shell) {
    case "bash":
      return bashScript(nodes);
    case "zsh":
      return zshScript(nodes);
    case "fish":
      return fishScript(nodes);
  }
}
