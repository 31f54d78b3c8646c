// `plugind completion bash|zsh|fish`: a script that completes verbs, their
// flags and plugin ids. Verbs and flags are written into the script from
// the program itself; ids come from `plugind ls -q` (one List call) when a
// verb that takes ids is being completed, with the address the command
// line gives.
import { Argument, type Command } from 'commander';

/** Verbs whose arguments are plugin ids. */
const ID_VERBS = ['inspect', 'kill', 'stop', 'rm', 'logs', 'exec', 'update', 'stats'];

interface Verb {
  name: string;
  flags: string[];
  description: string;
}

function verbs(program: Command): Verb[] {
  return program.commands.map((c) => ({
    name: c.name(),
    description: c.description().split('\n')[0]?.replace(/'/g, '') ?? '',
    flags: c.options.flatMap((o) => [o.long, o.short].filter((f): f is string => Boolean(f))).concat('--help'),
  }));
}

function globalFlags(program: Command): string[] {
  return program.options.flatMap((o) => [o.long, o.short].filter((f): f is string => Boolean(f))).concat('--help');
}

function bash(program: Command): string {
  const vs = verbs(program);
  const cases = vs.map((v) => `    ${v.name}) flags='${v.flags.join(' ')}' ;;`).join('\n');
  return `# plugind bash completion: source <(plugind completion bash)
_plugind() {
  local cur=\${COMP_WORDS[COMP_CWORD]} verb='' addr=() i w
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    case $w in
      -a|--address) addr=(--address "\${COMP_WORDS[i+1]}"); ((i++)) ;;
      --address=*) addr=("$w") ;;
      -*) ;;
      *) [ -z "$verb" ] && verb=$w ;;
    esac
  done
  if [ -z "$verb" ]; then
    COMPREPLY=($(compgen -W '${vs.map((v) => v.name).join(' ')} ${globalFlags(program).join(' ')}' -- "$cur"))
    return
  fi
  local flags=''
  case $verb in
${cases}
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$flags ${globalFlags(program).join(' ')}" -- "$cur"))
  else
    case $verb in
      ${ID_VERBS.join('|')}) COMPREPLY=($(compgen -W "$(plugind "\${addr[@]}" ls -q 2>/dev/null)" -- "$cur")) ;;
      completion) COMPREPLY=($(compgen -W 'bash zsh fish' -- "$cur")) ;;
      *) COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
  fi
}
complete -F _plugind plugind
`;
}

function zsh(program: Command): string {
  const vs = verbs(program);
  const described = vs.map((v) => `    '${v.name}:${v.description.replace(/:/g, '\\:')}'`).join('\n');
  const cases = vs.map((v) => `    ${v.name}) flags=(${v.flags.join(' ')}) ;;`).join('\n');
  return `#compdef plugind
# plugind zsh completion: source <(plugind completion zsh), or save as _plugind on $fpath
_plugind() {
  local -a verbs flags addr
  local verb='' i
  verbs=(
${described}
  )
  for ((i = 2; i < CURRENT; i++)); do
    case \${words[i]} in
      -a|--address) addr=(--address \${words[i+1]}); ((i++)) ;;
      -*) ;;
      *) [[ -z $verb ]] && verb=\${words[i]} ;;
    esac
  done
  if [[ -z $verb ]]; then
    _describe 'plugind verb' verbs
    return
  fi
  case $verb in
${cases}
  esac
  if [[ \${words[CURRENT]} == -* ]]; then
    compadd -- $flags ${globalFlags(program).join(' ')}
  else
    case $verb in
      ${ID_VERBS.join('|')}) compadd -- \${(f)"$(plugind $addr ls -q 2>/dev/null)"} ;;
      completion) compadd bash zsh fish ;;
      *) _files ;;
    esac
  fi
}
if [[ $funcstack[1] == _plugind ]]; then _plugind "$@"; else compdef _plugind plugind; fi
`;
}

function fish(program: Command): string {
  const vs = verbs(program);
  const lines = [
    '# plugind fish completion: plugind completion fish | source',
    'complete -c plugind -f',
    `complete -c plugind -n __fish_use_subcommand -a '${vs.map((v) => v.name).join(' ')}'`,
    ...vs.map((v) => `complete -c plugind -n '__fish_seen_subcommand_from ${v.name}' -a '${v.flags.join(' ')}'`),
    `complete -c plugind -n '__fish_seen_subcommand_from ${ID_VERBS.join(' ')}' -a '(plugind ls -q 2>/dev/null)'`,
    "complete -c plugind -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'",
  ];
  return lines.join('\n') + '\n';
}

export function addCompletionVerb(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script: verbs, flags and plugin ids (bash: source <(plugind completion bash))')
    .addArgument(new Argument('<shell>', 'the shell').choices(['bash', 'zsh', 'fish']))
    .action((shell: 'bash' | 'zsh' | 'fish') => {
      process.stdout.write(shell === 'bash' ? bash(program) : shell === 'zsh' ? zsh(program) : fish(program));
    });
}
